--[[
  Puts a step that has ended back to scheduled, due now, for an operator: a deliberate resend of a
  sent or failed step, or a retry of a failed one. Its attempts start again from zero, the last
  reason and provider answer go (the new send writes its own), and how often it was resent or
  retried is kept, as is the discount code it sent (`dc`: the step sends the same code again, and
  erasure revokes it by this note). Its grace period counts from now: the end of one set when it was planned late
  goes. The step counts as pending again on today's pending count, and the request is
  counted in the ledger. Nothing changes for a step in another state, or of a stopped (refunded)
  purchase. A cancel asked while an earlier attempt was in flight (`cx:<stepId>`) is dropped: the
  operator asks for this send.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records)
    KEYS[2] ledger hour of `now`
    KEYS[3] pending count of the day `now` falls in

    ARGV[1] step field (`s:<stepId>`)
    ARGV[2] now (epoch ms)
    ARGV[3] states the step may be in, comma-separated
    ARGV[4] ledger spec (JSON, as lib/ledger-count.lua): the request's count, its channel and rule
    ARGV[5] `rs` for a resend, `rq` for a retry: the record field that counts them

  Output (step records in their stored form, lib/step-codec.lua):
    { 1, record }          requeued; the new record
    { 0, record or '' }    not requeued: the step is in another state, or has no record
    { 2, reason }          not requeued: the purchase was stopped (the reason it was stopped with)
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/pending-states.lua
--!include lib/ledger-count.lua
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return { 0, '' } end
local rec = decodeStep(raw)
local allowed = false
for state in string.gmatch(ARGV[3], '[^,]+') do
  if rec.s == state then allowed = true end
end
if not allowed then return { 0, raw } end
local stop = redis.call('HGET', KEYS[1], 'stop')
if stop then return { 2, stop } end
local now = tonumber(ARGV[2])
local spec = cjson.decode(ARGV[4])
rec.s = 'scheduled'
rec.t = now
rec.d = now
rec.a = 0
rec.x = nil
-- The earlier send's id is kept (the latest five): erasure finds its message reference by it.
if rec.id then
  local earlier = type(rec.pid) == 'table' and rec.pid or {}
  table.insert(earlier, rec.id)
  while #earlier > 5 do table.remove(earlier, 1) end
  rec.pid = earlier
end
rec.id = nil
-- A resend starts its own bookkeeping (settle-sent.lua); the earlier send's is not redone.
rec.bk = nil
rec.dl = nil
rec.de = nil
rec.e = nil
rec.w = nil
rec.wy = nil
rec[ARGV[5]] = (rec[ARGV[5]] or 0) + 1
-- Which requeue came last, with the count of all (`r3`: the third, a resend): its job sends the
-- step's next message, and a `canceled` or `failed` of it gives back that job's charge and cap
-- slot (note-sms-status.lua). A requeue by an older version leaves the count behind.
rec.lr = (ARGV[5] == 'rs' and 'r' or 'q') .. ((rec.rs or 0) + (rec.rq or 0))
redis.call('HSET', KEYS[1], ARGV[1], encodeStep(rec))
-- A deliberate resend or retry overrides a cancel asked while an earlier attempt was in flight.
redis.call('HDEL', KEYS[1], 'cx:' .. string.sub(ARGV[1], 3))
for _, field in ipairs(spec.f) do redis.call('HINCRBY', KEYS[2], field, 1) end
redis.call('PEXPIRE', KEYS[2], spec.ttl)
local generation = redis.call('HGET', KEYS[1], 'g')
redis.call('HINCRBY', KEYS[3], pendingField(generation, rec, rec.c or spec.ch, spec.r), 1)
redis.call('PEXPIREAT', KEYS[3], (math.floor(now / 86400000) + 2) * 86400000)
return { 1, encodeStep(rec) }
