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
  `canceled` of the message a `sent` step stands for: nothing went out, and the step becomes
  `failed` with the reason given, so that an operator can send it again (`followups resend`). Its
  time (`t`) becomes now, as every annotation of a record sets it, unless it is later already: a
  status kept while Twilio's answer to the send was on its way, or handled by a replica whose
  clock is behind, never dates the record before its send.

  A report of a message the step does not stand for (its record names another message, or none:
  the step is being sent again, requeue-step.lua, and its earlier sends past the last five are
  named nowhere) changes nothing: the record shows the statuses of its own message only.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] now (epoch ms)
    ARGV[3] the status Twilio reported
    ARGV[4] its error code, or ''
    ARGV[5] the message's sid
    ARGV[6] the reason a `canceled` fails its sent step with (`<code>: <text>`)

  Output (step records in their stored form, lib/step-codec.lua):
    { 1, record }  written; the new record
    { 0, record }  kept: the record holds a status as far along, or an earlier final one
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
if known ~= nil then
  local rank, knownRank = RANK[status] or 0, RANK[known] or 0
  if OUTCOME[known] then
    if OUTCOME[status] ~= OUTCOME[known] or rank <= knownRank then return { 0, raw } end
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
-- Cancelled at Twilio before it went out: the customer got nothing of this send.
if status == 'canceled' and rec.s == 'sent' and rec.id == sid then
  rec.s = 'failed'
  rec.x = ARGV[6]
end
rec.t = math.max(rec.t or 0, tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
return { 1, encodeStep(rec) }
