--[[
  Reserves the next free send slot of a channel (GCRA: the key holds the theoretical arrival time
  of the next send, in integer epoch microseconds, so the spacing stays exact and adds up).
  string.format('%.0f') writes numbers in full; Lua's tostring would round them to 14 digits.

  Input:
    KEYS[1] the channel's next free slot
    ARGV[1] now (µs; '' for the Redis server's clock, which all workers share)
    ARGV[2] interval between sends (µs)
    ARGV[3] longest wait a slot may be reserved ahead (µs)
    ARGV[4] how long an idle key outlives its last reservation (µs)

  Output:
    { 1, wait µs }      granted: send after the wait
    { 0, retry in µs }  the next free slot is further than the longest wait; nothing reserved
]]
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local interval = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if slot < now then slot = now end
local wait = slot - now
if wait > maxWait then return { 0, wait - maxWait } end
local reservedUntil = slot + interval
local ttlMs = math.ceil((reservedUntil - now + tonumber(ARGV[4])) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', reservedUntil), 'PX', string.format('%.0f', ttlMs))
return { 1, wait }
