--[[
  A packed index (shared; included, not called): many items to a hash, in 16,384 buckets
  (store/keys.ts packedPlace), each entry named by 11 characters of its item's hash followed by
  what it links, and valued with text ending in the epoch ms at which it expires. Hash fields
  have no expiry of their own on Redis 7.0, so a bucket drops its expired entries when it is next
  written, at most once a day (its field `~` holds the time of its last sweep), and the workers
  sweep every bucket once a day besides (sweep-bucket.lua); it lives as long as its
  longest-lived entry. Readers leave out expired entries a sweep has not reached yet.

  sweepBucket(bucket, now)
    drops the bucket's expired entries and notes the sweep; how many it dropped
  fileEntry(bucket, field, head, expiresAt, now)
    sweeps the bucket if due, and sets the field to `<head><expiry>`, the later of `expiresAt`
    and the expiry it had
  entriesOf(bucket, entry, now)
    { rest of the field, value } of each entry whose field begins with `entry` and that has not
    expired by `now` (a sweep may not have reached it yet)
]]
local SWEEP_EVERY_MS = 86400000

local function expiryOf(value)
  return tonumber(string.match(value or '', '(%d+)$') or '0')
end

local function sweepBucket(bucket, now)
  local entries = redis.call('HGETALL', bucket)
  local removed = 0
  for i = 1, #entries, 2 do
    if entries[i] ~= '~' and expiryOf(entries[i + 1]) < now then
      redis.call('HDEL', bucket, entries[i])
      removed = removed + 1
    end
  end
  redis.call('HSET', bucket, '~', string.format('%d', now))
  return removed
end

local function fileEntry(bucket, field, head, expiresAt, now)
  if tonumber(redis.call('HGET', bucket, '~') or '0') + SWEEP_EVERY_MS <= now then
    sweepBucket(bucket, now)
  end
  local expiry = math.max(expiresAt, expiryOf(redis.call('HGET', bucket, field)))
  redis.call('HSET', bucket, field, head .. string.format('%d', expiry))
  if redis.call('PTTL', bucket) < expiry - now then redis.call('PEXPIRE', bucket, expiry - now) end
end

local function entriesOf(bucket, entry, now)
  local found = {}
  local entries = redis.call('HGETALL', bucket)
  for i = 1, #entries, 2 do
    if #entries[i] > #entry and string.sub(entries[i], 1, #entry) == entry
      and expiryOf(entries[i + 1]) >= now then
      found[#found + 1] = { string.sub(entries[i], #entry + 1), entries[i + 1] }
    end
  end
  return found
end
