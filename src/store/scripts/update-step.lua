--[[
  Applies a patch to a step record if its state is one of the expected ones, counts the change in
  the ledger, and once the last pending step is done keeps a stored purchase key of earlier
  versions as long as the record, and replaces the purchase by the part kept after the last step
  when the worker passed it (ARGV[7] to ARGV[9]) and the record still holds the purchase it read.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)
    KEYS[2] stored purchase key of earlier versions
    KEYS[3] ledger hour of `now`
    KEYS[4] pending count of the step's due day

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] now (epoch ms)
    ARGV[3] states the step may be in, comma-separated; `sending<=T` for a step being sent whose
            sender last changed it at or before T (epoch ms)
    ARGV[4] patch (JSON object of stored record fields)
    ARGV[5] ledger spec (JSON); '' to count nothing
    ARGV[6] the day KEYS[4] is for (days since the epoch)
    ARGV[7] the encoded purchase as the worker read it, or '' (optional, with ARGV[8] and [9])
    ARGV[8] the encoded part to keep after the last step
    ARGV[9] the summary reports show once the whole purchase is gone (JSON), as the record's `m`

  Output (step records in their stored form, lib/step-codec.lua):
    { 1, record, trimmed }  changed; the new record; trimmed 1 when the purchase was replaced by
                            ARGV[8], else 0
    { 0, record or '' } not changed: the step is in another state, or the event record is gone
    { -1, record }      KEYS[4] is not the step's due day: call again with that day
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/ledger-count.lua
--!include lib/finish-purchase.lua
--!include lib/purchase-fields.lua
--!include lib/read-step.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return { 0, '' } end
local now = tonumber(ARGV[2])
local raw, rec = readStep(KEYS[1], ARGV[1], now, ARGV[5] ~= '', ARGV[6])
if not rec then return { -1, raw } end
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if rec.s == state then allowed = true end
  -- `sending<=T`: a step being sent whose sender last changed it at or before T (its lease ran
  -- out: a worker that died mid-send), as claim-step.lua would take it over.
  local before = string.match(state, '^sending<=(%-?%d+)$')
  if before and rec.s == 'sending' and (rec.t or 0) <= tonumber(before) then allowed = true end
end
if not allowed then return { 0, raw or '' } end
local oldState = rec.s
-- Counted as pending under its due time and channel before the patch (which may set another
-- channel: the one a rules edit sent it on).
local counted = { d = rec.d, c = rec.c }
for k, v in pairs(cjson.decode(ARGV[4])) do rec[k] = v end
rec.t = now
redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
if ARGV[5] ~= '' then
  countChange(KEYS[3], KEYS[4], cjson.decode(ARGV[5]), oldState, rec.s, raw ~= false, counted,
    redis.call('HGET', KEYS[1], 'g'))
end
local trimmed = 0
if PENDING[oldState] and not PENDING[rec.s] and finishIfDone(KEYS[1], KEYS[2])
  and ARGV[7] and ARGV[7] ~= '' and readPurchase(KEYS[1]) == ARGV[7] then
  storePurchase(KEYS[1], ARGV[8])
  redis.call('HSETNX', KEYS[1], 'm', ARGV[9])
  trimmed = 1
end
return { 1, encodeStep(rec), trimmed }
