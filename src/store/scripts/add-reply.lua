--[[
  Appends a customer's reply to a step (never overwriting an earlier one) and returns its number:
  reply n of step s is field `y:<s>:<n>`, the count is `yn:<s>`. A reply kept the old way (one per
  step, inside the step record as `rp`/`rt`, before December 2026) becomes reply 1 first.
  A reply that names the message it came in (ARGV[3]) is filed under it in the same step, as
  `yr:<s>:<message key>` = n: the same message again (a copy delivered at once, or the retry of a
  delivery that failed after this script) appends nothing and gets the number it was filed as.

  Input:
    KEYS[1] event record (hash)
    ARGV[1] step id
    ARGV[2] the reply (JSON: t = text, at = received epoch ms, c = channel)
    ARGV[3] the message's key (a short digest of the provider's message id), or '' for none

  Output: { n, '' } the reply's number (1, 2, ...) when appended now; { n, stored reply (JSON) }
          when the message was filed before as reply n; { 0, '' } when the step has no record or
          its customer was erased (erase-event.lua stops the record with `erased: …`): nothing is
          filed then
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local stepField = 's:' .. ARGV[1]
local raw = redis.call('HGET', KEYS[1], stepField)
if not raw then return { 0, '' } end
if string.sub(redis.call('HGET', KEYS[1], 'stop') or '', 1, 7) == 'erased:' then return { 0, '' } end
local filedAs = ARGV[3] and ARGV[3] ~= '' and ('yr:' .. ARGV[1] .. ':' .. ARGV[3])
if filedAs then
  local earlier = redis.call('HGET', KEYS[1], filedAs)
  if earlier then
    return { tonumber(earlier), redis.call('HGET', KEYS[1], 'y:' .. ARGV[1] .. ':' .. earlier) or '' }
  end
end
local counter = 'yn:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[1], counter) == 0 then
  local rec = decodeStep(raw)
  if rec.rp then
    local legacy = { t = rec.rp, at = rec.rt or rec.t or rec.d, c = rec.c or 'sms' }
    redis.call('HSET', KEYS[1], 'y:' .. ARGV[1] .. ':1', cjson.encode(legacy), counter, 1)
    rec.rp = nil
    rec.rt = nil
    redis.call('HSET', KEYS[1], stepField, encodeStep(rec))
  end
end
local n = redis.call('HINCRBY', KEYS[1], counter, 1)
redis.call('HSET', KEYS[1], 'y:' .. ARGV[1] .. ':' .. n, ARGV[2])
if filedAs then redis.call('HSET', KEYS[1], filedAs, n) end
return { n, '' }
