--[[
  Notes Twilio's status of an SMS on its step's record, only forward. Twilio posts each status of
  a message on its own, in no set order, and handlers run side by side, so the record decides
  here, in the step that writes it: a status is written when it comes after the one recorded
  (accepted or scheduled < queued < sending < sent < a final one; a status this script does not
  know comes first of all), never the reverse. The first final status (delivered, undelivered,
  failed, canceled, partially_delivered, read) stays: none replaces it but `read` after
  `delivered` (undelivered and failed are one outcome, but the first of them stays with its error
  code). The caller counts the message in the ledger as the record says after this script, so
  two final reports handled at the same moment (canceled and undelivered with a code) are counted
  as the record shows them. The state and the other fields of the record stay, but for a
  `canceled` or `failed` of the message a `sent` step stands for (cancelled at Twilio, or Twilio
  could not send it): nothing went out, and the step becomes `failed` with the reason given, so
  that an operator can send it again (`followups resend`, `followups failed --retry`), is listed
  in the index of such steps (KEYS[3]), and gives back its frequency-cap slot (KEYS[2]): here, in
  the one write that fails the step, so a report handled twice, or after a resend took the slot
  again, never gives back another send's slot. The customer's latest sent follow-up (KEYS[4]) stops
  naming the step there too: the one it replaced (`p`, settle-sent.lua) is put back, or, when none
  is kept (or it is the same step's), the latest sent goes; a kept earlier one naming the step
  goes from it. So the customer's next purchase is not credited to a text they never got. Its
  time (`t`) becomes now, as every annotation of a record sets it, unless it is later already: a
  status kept while Twilio's answer to the send was on its way, or handled by a replica whose
  clock is behind, never dates the record before its send.

  A report of a message the step does not stand for (its record names another message, or none:
  the step is being sent again, requeue-step.lua, and its earlier sends past the last five are
  named nowhere) changes nothing: the record shows the statuses of its own message only.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)
    KEYS[2] the customer's sends on the step's channel (frequency caps: follow-up id by send time)
    KEYS[3] steps failed by a final SMS status (sorted set: `<eventId>/<stepId>` by time failed)
    KEYS[4] the customer's latest sent follow-up (JSON: `eventId`, `stepId`, `at`, the one it
            replaced as `p`), or a key of no customer's (customer unknown)

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] now (epoch ms)
    ARGV[3] the status Twilio reported
    ARGV[4] its error code, or ''
    ARGV[5] the message's sid
    ARGV[6] the reason a `canceled` or `failed` fails its sent step with (`<code>: <text>`)
    ARGV[7] the step's follow-up id (its send's job id without a resend's or retry's suffix), whose
            send's cap slot (KEYS[2]) and charge go back, or ''
    ARGV[8] the step as KEYS[3] lists it (`<eventId>/<stepId>`)
    ARGV[9] how long KEYS[3] keeps a step (ms)

  Output (step records in their stored form, lib/step-codec.lua):
    { 1, record }  written; the new record
    { 1, record, job }  written, and a `canceled` or `failed` failed the sent step: the id of
                   the job whose send the message was (whose charge goes back), or '' when it is
                   not known (no follow-up id; a resend and a retry both, requeued by a version
                   that did not note the latest, `lr`, and no cap slot to tell)
    { 0, record }  kept: the record holds a status as far along, or an earlier final one
    { 0, record, job }  kept: a `canceled` or `failed` again of the message whose such report
                   failed the step; the job whose send it was (its charge goes back, once by its
                   id), when the record tells (after a resend and a retry both: by `lr`)
    { 2, record }  kept: the record is of another message, or of none yet
    { 0, '' }      the event record or the step's record is gone
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return { 0, '' } end
local rec = decodeStep(raw)
local sid = ARGV[5]
-- A step that names no message (one being sent, or resent) is not yet this message's: every sid
-- whose reference names the step was its `id` once, and is an earlier message's now.
if rec.id ~= sid then return { 2, raw } end
if type(rec.pid) == 'table' then
  for _, earlier in ipairs(rec.pid) do
    if earlier == sid then return { 2, raw } end
  end
end
-- Cancelled at Twilio, or Twilio could not send it: nothing went out.
local NOT_SENT = { canceled = true, failed = true }
local RANK = {
  accepted = 1, scheduled = 1, queued = 2, sending = 3, sent = 4,
  delivered = 5, undelivered = 5, failed = 5, canceled = 5, partially_delivered = 5, read = 6,
}
-- The outcome of each final status: a final status gives way only to a later one of its outcome.
local OUTCOME = {
  delivered = 'delivered', read = 'delivered', undelivered = 'undelivered',
  failed = 'undelivered', canceled = 'canceled', partially_delivered = 'partially_delivered',
}
local status = ARGV[3]
local known = rec.dl
-- The job that sent the step's latest message, when the record tells: the step's own, a resend's
-- or a retry's; for a step both resent and retried, the one of its latest requeue (`lr`, when
-- it counts every requeue: requeue-step.lua). nil when it does not tell.
local function sendJobOf()
  local rs, rq = rec.rs or 0, rec.rq or 0
  if rs == 0 and rq == 0 then return ARGV[7] end
  if rq == 0 then return ARGV[7] .. '-r' .. rs end
  if rs == 0 then return ARGV[7] .. '-q' .. rq end
  local kind, count = string.match(rec.lr or '', '^([rq])(%d+)$')
  if not kind or tonumber(count) ~= rs + rq then return nil end
  return ARGV[7] .. '-' .. kind .. (kind == 'r' and rs or rq)
end
-- The job whose send this message was, when the record alone tells (no resend and retry both):
-- a report repeated after the handling that failed the step stopped before the charge went back
-- (Twilio posts it again) names it again; the charge goes back by its id, so once.
local function repeatedFailure()
  if rec.s ~= 'failed' or ARGV[7] == '' then return nil end
  if not (NOT_SENT[status] and NOT_SENT[known or '']) then return nil end
  return sendJobOf()
end
if known ~= nil then
  local rank, knownRank = RANK[status] or 0, RANK[known] or 0
  if OUTCOME[known] then
    if OUTCOME[status] ~= OUTCOME[known] or rank <= knownRank then
      local job = repeatedFailure()
      if job then return { 0, raw, job } end
      return { 0, raw }
    end
  elseif not OUTCOME[status] and rank <= knownRank then
    return { 0, raw }
  end
end
rec.dl = status
if ARGV[4] ~= '' then
  rec.de = tonumber(ARGV[4])
elseif not OUTCOME[known or ''] then
  rec.de = nil
end
-- Cancelled at Twilio, or Twilio could not send it: the customer got nothing of this send.
local failedNow = (status == 'canceled' or status == 'failed') and rec.s == 'sent'
if failedNow then
  rec.s = 'failed'
  rec.x = ARGV[6]
end
local now = tonumber(ARGV[2])
rec.t = math.max(rec.t or 0, now)
redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
local sendJob = ''
if failedNow then
  -- The slot of this send, by its job's id: the step's own for its first send, a resend's
  -- (`<id>-r<n>`) or a retry's (`<id>-q<n>`) after one; when it had both, that of its latest
  -- requeue, or, for a record that does not tell (requeued by an older version), the later slot.
  if ARGV[7] ~= '' then
    local exact = sendJobOf()
    local candidates = { exact }
    if not exact then candidates = { ARGV[7] .. '-r' .. rec.rs, ARGV[7] .. '-q' .. rec.rq } end
    local latest, latestAt = nil, nil
    for _, member in ipairs(candidates) do
      local at = tonumber(redis.call('ZSCORE', KEYS[2], member))
      if at and (latestAt == nil or at > latestAt) then latest, latestAt = member, at end
    end
    if latest then redis.call('ZREM', KEYS[2], latest) end
    -- The send's job, for its charge to be given back: the one candidate, or the latest slot.
    sendJob = latest or (#candidates == 1 and candidates[1]) or ''
  end
  -- The customer's latest sent no longer names a text they never got (nor does the one it keeps).
  local function isThisStep(entry)
    return type(entry) == 'table' and type(entry.eventId) == 'string'
      and entry.eventId .. '/' .. tostring(entry.stepId) == ARGV[8]
  end
  local latestSent = redis.call('GET', KEYS[4])
  local ok, known = pcall(cjson.decode, latestSent or '')
  if ok and isThisStep(known) then
    if type(known.p) == 'table' and not isThisStep(known.p) and tonumber(known.p.at) then
      redis.call('SET', KEYS[4], cjson.encode(known.p), 'KEEPTTL')
    else
      redis.call('DEL', KEYS[4])
    end
  elseif ok and type(known) == 'table' and isThisStep(known.p) then
    known.p = nil
    redis.call('SET', KEYS[4], cjson.encode(known), 'KEEPTTL')
  end
  local keepMs = tonumber(ARGV[9])
  redis.call('ZADD', KEYS[3], now, ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - keepMs)
  redis.call('PEXPIRE', KEYS[3], keepMs)
  return { 1, encodeStep(rec), sendJob }
end
return { 1, encodeStep(rec) }
