--[[
  Charges a message's cost to its channel's spend of the month, once per message, unless the
  budget is reached and the message must respect it; says which alert thresholds this charge
  crossed first (each threshold alerts once a month, even if spend given back crosses it again).

  Input:
    KEYS[1]  the channel's spend of the month (micros of the default currency)
    KEYS[2]  what each message of the month was charged (hash: charge id → micros)
    KEYS[3]  the alert thresholds already crossed this month (hash: percent → 1)
    KEYS[4]  what each message of the month before was charged: a retry of a message charged
             then (it went out, or may have, just before the month turned) is not charged again

    ARGV[1]  charge id: the follow-up id of a message, `call:<sid>` of a call
    ARGV[2]  the cost (micros; 0 only checks the budget)
    ARGV[3]  the monthly budget (micros), or -1 for none
    ARGV[4]  1 when a reached budget stops this message, else 0
    ARGV[5]  keep the month's keys this long (ms)
    ARGV[6..] alert thresholds in percent (80, 100)

  Output: {1 when charged (now or before) else 0, spend before, spend after, crossed percents…};
          {2, spend before, spend before} when charged in the month before
]]
local before = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {1, before, before} end
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return {2, before, before} end
local budget = tonumber(ARGV[3])
if ARGV[4] == '1' and budget >= 0 and before >= budget then return {0, before, before} end
local after = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local reply = {1, before, after}
if budget > 0 then
  for i = 6, #ARGV do
    local mark = budget * tonumber(ARGV[i]) / 100
    if before < mark and after >= mark and redis.call('HSETNX', KEYS[3], ARGV[i], '1') == 1 then
      reply[#reply + 1] = tonumber(ARGV[i])
    end
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return reply
