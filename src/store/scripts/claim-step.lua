--[[
  Takes the right to send a step: moves it to `sending` if it is scheduled, or if its previous
  sender's lease ran out (a crashed worker; counted as a takeover). A step of a stopped event (full
  refund, erasure), or one marked by itself (`cx:<stepId>`, stop-event.lua), is cancelled instead,
  and counted with the marker's reason.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records, `stop` marker)
    KEYS[2] stored purchase key of earlier versions (kept as long as the record once no step is
            pending)
    KEYS[3] ledger hour of `now`
    KEYS[4] pending count of the step's due day

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] now (epoch ms)
    ARGV[3] send lease (ms)
    ARGV[4] ledger spec (JSON) to count a cancellation with (its reason replaced by the stop
            marker's, the word before its colon); '' to count nothing
    ARGV[5] the day KEYS[4] is for (days since the epoch)

  Output (step records in their stored form, lib/step-codec.lua):
    { 1, record, takenOver (0|1) }  claimed
    { 0, record, 0 }                not claimed: the record as found, or as just cancelled
    { -1, record }                  KEYS[4] is not the step's due day: call again with that day
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/ledger-count.lua
--!include lib/finish-purchase.lua
--!include lib/read-step.lua
local now = tonumber(ARGV[2])
local raw, rec = readStep(KEYS[1], ARGV[1], now, ARGV[4] ~= '', ARGV[5])
if not rec then return { -1, raw } end
local takenOver = rec.s == 'sending' and rec.t + tonumber(ARGV[3]) <= now
-- The event's stop marker (full refund, erasure), or this step's own (stop-event.lua: cancelled
-- while a live worker was sending it): either cancels instead of a send or a takeover.
local stop = redis.call('HGET', KEYS[1], 'stop')
  or redis.call('HGET', KEYS[1], 'cx:' .. string.sub(ARGV[1], 3))
if stop and (rec.s == 'scheduled' or takenOver) then
  rec.s = 'cancelled'
  rec.x = stop
  rec.t = now
  redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
  if ARGV[4] ~= '' then
    local spec = cjson.decode(ARGV[4])
    -- Counted with the stop's own reason (`refunded: …`, `erased: …`), as its record says: the
    -- reason field's last part (`reason|cancelled|<channel>|<kind>|<reason>`) is the stop's word.
    local code = string.match(stop, '^([%w-]+):')
    if code then
      for i, field in ipairs(spec.f) do
        if string.sub(field, 1, 7) == 'reason|' then
          spec.f[i] = (string.gsub(field, '[^|]*$', code, 1))
        end
      end
    end
    countChange(KEYS[3], KEYS[4], spec, 'scheduled', 'cancelled', raw ~= false, rec,
      redis.call('HGET', KEYS[1], 'g'))
  end
  finishIfDone(KEYS[1], KEYS[2])
  return { 0, encodeStep(rec), 0 }
end
if rec.s == 'scheduled' or takenOver then
  if takenOver then rec.r = (rec.r or 0) + 1 end
  rec.s = 'sending'
  rec.t = now
  redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
  return { 1, encodeStep(rec), takenOver and 1 or 0 }
end
return { 0, raw, 0 }
