--[[
  The address index's entries of a customer (shared; included, not called): see
  remember-customer.lua for what an entry is. Needs lib/packed-index.lua.

  fileCustomer(firstKey, firstArg, count, customerId, purchasedMs, expiresAt, now)
    files the customer under `count` addresses: KEYS[firstKey + i] is the bucket of address i and
    ARGV[firstArg + i] its part of the entry, i from 0; the purchase time (kept in epoch seconds)
    replaces the entry's only when later
  erasedSince(markerKey, purchasedMs)
    whether the customer's erasure marker (epoch ms) is at or after the purchase (epoch ms, as
    schedule-steps.lua compares: a purchase later in the same second is not erased)
]]
local function fileCustomer(firstKey, firstArg, count, customerId, purchasedMs, expiresAt, now)
  local purchased = math.floor(purchasedMs / 1000)
  for i = 0, count - 1 do
    local key = KEYS[firstKey + i]
    local field = ARGV[firstArg + i] .. customerId
    local latest = purchased
    local known = tonumber(string.match(redis.call('HGET', key, field) or '', '^(%d+):') or '0')
    if known > latest then latest = known end
    fileEntry(key, field, string.format('%d', latest) .. ':', expiresAt, now)
  end
end

local function erasedSince(markerKey, purchasedMs)
  local erasedAt = redis.call('GET', markerKey)
  return erasedAt ~= false and tonumber(erasedAt) >= purchasedMs
end
