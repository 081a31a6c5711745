--[[
  Redeems a discount code for an order, once: the first order to redeem it keeps it; the same
  order again (a retried request, a re-published purchase) is answered as before, unchanged.

  A fresh redemption is counted in the ledger hour under the rule that issued the code
  (`redeemed|<ruleId>`), once, for the owners' redemption rate.

  A code revoked when its customer was erased (`w`, revoke-code.lua) is not redeemed: one redeemed
  before is answered as taken, by no order named.

  Input:
    KEYS[1] the code (hash: c code, p percent, v last valid day, x expiry epoch ms, s step, r order,
            ra at, w revoked at)
    KEYS[2] ledger hour of now
    ARGV[1] now, epoch ms
    ARGV[2] the redeeming order id
    ARGV[3] how long a ledger hour is kept (ms)
    ARGV[4] when the code was used (epoch ms; the purchase's time for one a purchase names), which
            its expiry is checked against; absent or '': now

  Output:
    { 1, order }  redeemed now by this order
    { 2, order }  redeemed before by this same order
    { 3, order }  redeemed before by another order (named)
    { 3, '' }     redeemed before, then revoked (its order no longer named)
    { 4, '' }     expired (not redeemed)
    { 5, '' }     revoked (not redeemed)
    { 0, '' }     no such code
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return { 0, '' } end
local by = redis.call('HGET', KEYS[1], 'r')
if by then
  if by == ARGV[2] then return { 2, by } end
  return { 3, by }
end
if redis.call('HEXISTS', KEYS[1], 'w') == 1 then
  if redis.call('HEXISTS', KEYS[1], 'ra') == 1 then return { 3, '' } end
  return { 5, '' }
end
local expires = tonumber(redis.call('HGET', KEYS[1], 'x') or '0')
local usedAt = tonumber(ARGV[4] ~= nil and ARGV[4] ~= '' and ARGV[4] or ARGV[1])
if expires < usedAt then return { 4, '' } end
redis.call('HSET', KEYS[1], 'r', ARGV[2], 'ra', ARGV[1])
local rule = string.match(redis.call('HGET', KEYS[1], 's') or '', '^([^.]+)')
if rule then
  redis.call('HINCRBY', KEYS[2], 'redeemed|' .. rule, 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return { 1, ARGV[2] }
