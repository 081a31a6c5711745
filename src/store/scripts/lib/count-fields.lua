--[[
  Counts ledger fields given as script arguments (shared; included, not called).

  countFields(hourKey, keepMs, first)
    hourKey  the ledger hour to count into (declared in the caller's KEYS)
    keepMs   how long the hour is kept (ms)
    first    the index of the first ARGV entry to count: each is a field to count by one, or
             `<field>\n<amount>` to add an amount (revenue, in minor units)
]]
local function countFields(hourKey, keepMs, first)
  for i = first, #ARGV do
    local field, amount = string.match(ARGV[i], '^(.-)\n(%-?%d+)$')
    if field then
      redis.call('HINCRBY', hourKey, field, amount)
    else
      redis.call('HINCRBY', hourKey, ARGV[i], 1)
    end
  end
  redis.call('PEXPIRE', hourKey, keepMs)
end
