--[[
  An order as its scripts return it (shared; included, not called): the fields of its own hash
  (refunds, and links of versions of key layout 3 and before) followed by its packed links in its bucket,
  each as `e:<eventId>`, those expired by `now` left out. Needs entriesOf (lib/packed-index.lua).

  orderFields(orderKey, bucket, entry, now)  flat field/value list
]]
local function orderFields(orderKey, bucket, entry, now)
  local flat = redis.call('HGETALL', orderKey)
  for _, link in ipairs(entriesOf(bucket, entry, now)) do
    flat[#flat + 1] = 'e:' .. link[1]
    flat[#flat + 1] = link[2]
  end
  return flat
end
