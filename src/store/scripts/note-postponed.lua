--[[
  Notes on a scheduled step that its job was put back to wait past its due time (a send window,
  a frequency cap, a call not over, a joined thank-you not gone yet): until when and why, so that
  operators see it in the customer's timeline. The due time stays the planned one (the grace
  period counts from it), and nothing is counted: the ledger keeps the step pending under its
  due time. A step in any other state, or without a record, is left alone. The note goes when
  the step leaves the pending states (encodeStep drops it from a settled step's record, whichever
  script settles it), is put back in the queue (requeue-step.lua) or re-planned to another time
  (replan-event.lua).

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] when the job is tried again (epoch ms)
    ARGV[3] why (one letter: postponeLetter, store/step-record.ts)

  Output: 1 noted, 0 not (the step is not scheduled, or has no record)
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = decodeStep(raw)
if rec.s ~= 'scheduled' then return 0 end
rec.w = tonumber(ARGV[2])
rec.wy = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
return 1
