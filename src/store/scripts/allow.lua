--[[
  Takes members off a channel's suppression lists (everything, and offers only), as a texted
  START does; but leaves a list alone that holds one of the given marks (`d:<keyed address hash>`:
  the number declined the channel other than by text). In one step with suppress.lua's marks, so
  a decline handled at the same moment is either seen here or made after. With 'keep-offers', the
  list of offers only is left as it is (a START sent before an opt-out of offers, handled after it).
  A START given when it was sent (ARGV[3]: its first delivery, also for one replayed from the
  webhook spool or delivered again by Twilio) reads the number's opt-out times here too, in the
  same step: an opt-out noted since the caller last read them (handled while this START was being
  applied) is later than the START, which then changes nothing. A START handled live on its first
  delivery gives instead how many opt-outs the number had noted when it came in (ARGV[4], the
  times' `n` and `n-offers`): one noted since (a STOP handled while this START was being applied,
  by another replica or request) is later than the START, whatever the replicas' clocks say.

  Input:
    KEYS[1]     the channel's suppression set (everything)
    KEYS[2]     the channel's suppression set of offers only
    KEYS[2 + i] the number's opt-out times (sorted sets: `at` everything, `offers` offers only;
                `n` and `n-offers` how many of each were noted), i from 1; none without ARGV[3]
                or ARGV[4]

    ARGV[1]   marks that keep a list as it is, separated by spaces; '' for none
    ARGV[2]   'keep-offers' to leave KEYS[2] as it is; '' to take the members off it too
    ARGV[3]   when the START was sent (epoch ms); '' to read no times
    ARGV[4]   how many opt-outs the number's times counted when the START came in, of everything
              and of offers, summed over KEYS[3..] ('<all> <offers>'); '' to compare no counts
    ARGV[5..] members to remove

  Output: how many lists were kept because of a mark; -1 when an opt-out of everything is later
  than the START (nothing removed)
]]
local sentAt = tonumber(ARGV[3])
local keepOffers = ARGV[2] == 'keep-offers'
if sentAt then
  for i = 3, #KEYS do
    local all = redis.call('ZSCORE', KEYS[i], 'at')
    if all and tonumber(all) > sentAt then return -1 end
    local offers = redis.call('ZSCORE', KEYS[i], 'offers')
    if offers and tonumber(offers) > sentAt then keepOffers = true end
  end
end
local seenAll, seenOffers = string.match(ARGV[4], '^(%d+) (%d+)$')
if seenAll then
  local all, offers = 0, 0
  for i = 3, #KEYS do
    all = all + (tonumber(redis.call('ZSCORE', KEYS[i], 'n')) or 0)
    offers = offers + (tonumber(redis.call('ZSCORE', KEYS[i], 'n-offers')) or 0)
  end
  if all > tonumber(seenAll) then return -1 end
  if offers > tonumber(seenOffers) then keepOffers = true end
end
local kept = 0
for index = 1, 2 do
  local list = KEYS[index]
  local marked = false
  for mark in string.gmatch(ARGV[1], '%S+') do
    if redis.call('SISMEMBER', list, mark) == 1 then marked = true end
  end
  if marked then
    kept = kept + 1
  elseif index == 1 or not keepOffers then
    for i = 5, #ARGV do redis.call('SREM', list, ARGV[i]) end
  end
end
return kept
