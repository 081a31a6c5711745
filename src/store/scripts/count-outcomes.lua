--[[
  Counts outcomes that are not step state changes (opt-outs, replies, skips at planning) into an
  hourly ledger aggregate, each field once.

  Input:
    KEYS[1]    ledger hour
    ARGV[1]    how long the hour is kept (ms)
    ARGV[2..]  aggregate fields to count

  Output: nil
]]
for i = 2, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
