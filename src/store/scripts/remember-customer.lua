--[[
  Files a customer under the addresses of a purchase: the console's and erasure's index from an
  address's keyed hash to customer ids, many addresses to a key (store/customer-index.ts). An
  entry is `<11 characters of the address hash after its first two><customer id>` → when it was last
  filed (epoch ms). Hash fields have no expiry of their own on Redis 7.0, so the entries of a
  bucket older than `keep` are dropped when the bucket is next written, at most once a day (its
  field `~` holds the time of its last sweep); a bucket lives `keep` after its latest filing.

  Input:
    KEYS[1 + i] the bucket of each address, i from 0 (hash: entry → epoch ms)

    ARGV[1]     customer id
    ARGV[2]     now (epoch ms)
    ARGV[3]     keep an entry this long after it was last filed (ms)
    ARGV[4 + i] the address part of the entry in KEYS[1 + i]

  Output: how many addresses were filed
]]
local SWEEP_EVERY_MS = 86400000
local now = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('HGET', key, '~') or '0') + SWEEP_EVERY_MS <= now then
    local entries = redis.call('HGETALL', key)
    for j = 1, #entries, 2 do
      if entries[j] ~= '~' and (tonumber(entries[j + 1]) or 0) + keep < now then
        redis.call('HDEL', key, entries[j])
      end
    end
    redis.call('HSET', key, '~', ARGV[2])
  end
  redis.call('HSET', key, ARGV[3 + i] .. ARGV[1], ARGV[2])
  if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end
end
return #KEYS
