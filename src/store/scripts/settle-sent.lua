--[[
  Ends the bookkeeping after a send: remembers the follow-up as the customer's latest sent (for
  attributing their next purchase) unless a later one is remembered already, and takes the mark
  `bk` ("bookkeeping pending") off the step's record. The `sent` state change sets the mark
  (update-step.lua), and the worker clears it here once the message references, the call's
  binding and the check-in note are written: a step still marked was sent by a run that failed
  before the end of that bookkeeping (a Redis error after the send), and the job's next run redoes
  it. An event record that is gone (expired) leaves everything alone. One whose customer was
  erased while the message was on its way (erase-event.lua stopped it with `erased: …`) keeps
  nothing of this send either: the step is scrubbed as erasure scrubs it (lib/scrub-step.lua),
  the latest sent is not written, and the worker removes what its bookkeeping wrote.

  The latest sent keeps the one it replaced (`p`, without that one's own `p`): a text Twilio then
  reports `canceled` or `failed` never reached the customer, and note-sms-status.lua puts the one
  before it back. A step such a report failed already (Twilio's status came before its reference
  was written, and was applied just before this) does not become the latest sent.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)
    KEYS[2] the customer's latest sent follow-up (JSON with `at`, epoch ms)

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] the latest sent follow-up (JSON)
    ARGV[3] when it was sent (epoch ms)
    ARGV[4] keep the latest sent this long (ms)

  Output: 1 done, 0 the event record or the step's record is gone, 2 the customer was erased
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/scrub-step.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = decodeStep(raw)
local stop = redis.call('HGET', KEYS[1], 'stop')
if stop and string.sub(stop, 1, 7) == 'erased:' then
  redis.call('HSET', KEYS[1], ARGV[1], encodeStep(scrubStep(rec)))
  return 2
end
if rec.bk ~= nil then
  rec.bk = nil
  redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
end
-- Cancelled at Twilio, or Twilio could not send it (note-sms-status.lua): the customer got nothing.
if rec.s == 'failed' then return 1 end
local at = tonumber(ARGV[3])
local sent = cjson.decode(ARGV[2])
local latest = redis.call('GET', KEYS[2])
if latest then
  local ok, known = pcall(cjson.decode, latest)
  if ok and type(known) == 'table' and tonumber(known.at) then
    if tonumber(known.at) > at then return 1 end
    known.p = nil
    sent.p = known
  end
end
redis.call('SET', KEYS[2], cjson.encode(sent), 'PX', ARGV[4])
return 1
