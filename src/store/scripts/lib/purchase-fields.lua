--[[
  The stored purchase inside its event record (shared; included, not called): the encoded
  purchase (store/purchase-codec.ts) cut into fields `p0`, `p1`, … of at most 64 bytes, so that
  the record stays a compact listpack on a Redis with default settings (hash-max-listpack-value
  64), and lives and expires with the record. Versions before 2026-12-03 kept it in a key of
  its own, which the scripts that took that key still extend, finish and erase until it expires.

  purchaseStored(recordKey)          whether the record holds a purchase
  readPurchase(recordKey)            the encoded purchase, or false
  storePurchase(recordKey, encoded)  replaces whatever purchase the record holds
  deletePurchase(recordKey)          removes it
]]
local PURCHASE_CHUNK_BYTES = 64

local function purchaseStored(recordKey)
  return redis.call('HEXISTS', recordKey, 'p0') == 1
end

local function readPurchase(recordKey)
  local chunks = {}
  while true do
    local chunk = redis.call('HGET', recordKey, 'p' .. #chunks)
    if not chunk then break end
    chunks[#chunks + 1] = chunk
  end
  if #chunks == 0 then return false end
  return table.concat(chunks)
end

local function deletePurchase(recordKey)
  local n = 0
  while redis.call('HDEL', recordKey, 'p' .. n) == 1 do n = n + 1 end
end

-- Chunks written per HSET: Lua's unpack takes some 8,000 values at most, and a purchase with
-- hundreds of long item names is hundreds of kilobytes.
local PURCHASE_CHUNKS_PER_CALL = 500

local function storePurchase(recordKey, encoded)
  deletePurchase(recordKey)
  local fields = {}
  local chunk = 0
  for at = 1, #encoded, PURCHASE_CHUNK_BYTES do
    fields[#fields + 1] = 'p' .. chunk
    fields[#fields + 1] = string.sub(encoded, at, at + PURCHASE_CHUNK_BYTES - 1)
    chunk = chunk + 1
    if #fields == 2 * PURCHASE_CHUNKS_PER_CALL then
      redis.call('HSET', recordKey, unpack(fields))
      fields = {}
    end
  end
  if #fields > 0 then redis.call('HSET', recordKey, unpack(fields)) end
end
