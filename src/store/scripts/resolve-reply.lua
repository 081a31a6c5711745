--[[
  Marks a reply resolved (a complaint someone at the shop dealt with), once: the first resolution
  stays. Reply 1 of a step whose reply was kept the old way (`rp`/`rt` inside the step record,
  before December 2026) moves to its own field first, as add-reply.lua does.

  Input:
    KEYS[1] event record (hash: replies as `y:<stepId>:<n>`, their count as `yn:<stepId>`)
    ARGV[1] step id
    ARGV[2] the reply's number
    ARGV[3] the resolution (JSON: at = epoch ms, by, note)

  Output:
    { 1, reply }   resolved now; the reply as stored
    { 2, reply }   resolved before; unchanged
    { 0, '' }      no such reply
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
local field = 'y:' .. ARGV[1] .. ':' .. ARGV[2]
local counter = 'yn:' .. ARGV[1]
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[1], counter) == 0 then
  local stepField = 's:' .. ARGV[1]
  local raw = redis.call('HGET', KEYS[1], stepField)
  local rec = raw and decodeStep(raw)
  if rec and rec.rp then
    local legacy = { t = rec.rp, at = rec.rt or rec.t or rec.d, c = rec.c or 'sms' }
    redis.call('HSET', KEYS[1], field, cjson.encode(legacy), counter, 1)
    rec.rp = nil
    rec.rt = nil
    redis.call('HSET', KEYS[1], stepField, encodeStep(rec))
  end
end
local raw = redis.call('HGET', KEYS[1], field)
if not raw then return { 0, '' } end
local reply = cjson.decode(raw)
if reply.res then return { 2, raw } end
reply.res = cjson.decode(ARGV[3])
local stored = cjson.encode(reply)
redis.call('HSET', KEYS[1], field, stored)
return { 1, stored }
