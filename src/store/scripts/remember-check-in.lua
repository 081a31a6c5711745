--[[
  Remembers how a customer's check-in for one purchase ended (sent, or skipped for a reason that
  puts them in the comparison group) and counts it once into the ledger hour of that moment, for
  the owners' comparison of repeat purchases. The first outcome of a purchase's check-in counts;
  a later one (a fallback text after a call) changes nothing. Entries whose window has passed are
  dropped on the way, and the customer's hash lives as long as its latest entry needs.

  Input:
    KEYS[1] the customer's check-ins (hash: purchase hash → "<group> <at> <code or ->")
    KEYS[2] ledger hour of the check-in's moment

    ARGV[1] the purchase hash (field)
    ARGV[2] the entry, "<group> <at> <code or ->"
    ARGV[3] ledger field to count by one
    ARGV[4] how long the ledger hour is kept from now (ms)
    ARGV[5] now (epoch ms)
    ARGV[6] how long an entry is kept after its moment (ms): the attribution window and a day
    ARGV[7] the entry's moment (epoch ms): when the check-in went out, or would have

  Output: 1 when remembered and counted, 0 when the purchase's check-in was known already (or
          its window is over)
]]
local now = tonumber(ARGV[5])
local keep = tonumber(ARGV[6])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local at = tonumber(string.match(entries[i + 1], '^%S+ (%-?%d+)'))
  if at == nil or at + keep < now then redis.call('HDEL', KEYS[1], entries[i]) end
end
local wanted = tonumber(ARGV[7]) + keep - now
if wanted <= 0 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if wanted > redis.call('PTTL', KEYS[1]) then redis.call('PEXPIRE', KEYS[1], wanted) end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
