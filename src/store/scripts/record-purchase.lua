--[[
  Counts a purchase into the customer's history once per event: the first call for an event
  records the count it saw in the event record, a repeated call returns that same count, so
  redelivered or re-published events neither count twice nor see themselves as an earlier purchase.
  The event's fingerprint is kept beside it: an id used again for other content is a conflict,
  and changes nothing. The customer's history also lists their purchases (`e:<eventId>` = purchase
  time), the index from a customer to what was planned for them and how erasure finds every
  purchase: none is dropped here (CustomerHistoryStore drops those whose records have gone, each
  time the history has doubled: `pn` is the size it prunes at next). Each purchase's entry also
  names its order (`e:<eventId>` = `<purchase time>:<the order id's idHash>`, which names the
  order's refunds and its link: erasure reaches them from here once the purchase's record has
  gone; in one field, as a field of its own costs a history about 25 B more a purchase) and, for
  a purchase with a phone number, the history notes that number's keyed hash (`ph:<member>` = 1, the member as
  SuppressionList.addressMember gives it: erasure reaches the number's latest check-in and its
  "texted before" mark from here). The history is a shard key and those are global keys:
  erasure removes them itself, no script touches both. The history also keeps, per channel, the
  consent the customer's latest purchase (by purchase time) that stated one gave, in one field `cn`:
  per channel its letter (step-codec's: e, s, v), 1 or 0, and that purchase's time in base 36
  (`e1kx3f9a2b s0kx3f9a2b`): a later purchase's checkout gives or withdraws it for the steps of
  every earlier one (send-guard.ts); of purchases made at the same instant, one that withdraws it
  stands, whichever is taken in last.

  Input:
    KEYS[1] event record (hash; field `h` = the count seen)
    KEYS[2] customer history (hash: `n` purchases, `last` latest purchase time, `e:<eventId>`
            the time of each purchase and its order, `ph:<member>` its number)
    KEYS[3] the customer's erasure marker (when they were erased, epoch ms; usually absent)
    KEYS[4] the latest follow-up sent to the customer (JSON; read only, for attribution)
    KEYS[5] the customer's remembered check-ins (hash; read only, for the check-in comparison)

    ARGV[1] the purchase time (ISO 8601, UTC, so it compares as text)
    ARGV[2] keep the customer's history this long after their latest purchase (ms)
    ARGV[3] keep a new event record this long (ms)
    ARGV[4] the event's fingerprint
    ARGV[5] the event id
    ARGV[6] the purchase time (epoch ms)
    ARGV[7] the order id's idHash ('' or absent: not noted)
    ARGV[8] the purchase's phone number's member (`h:<keyed hash>`; '' or absent: none)
    ARGV[9] the consent the purchase states: per channel its letter and 1 or 0, separated by
            spaces (`e1 s0`; '' or absent: none)

  Output: { earlier purchases, latest earlier purchase time or '', first sighting (0|1),
            the latest follow-up sent or '', the remembered check-ins as field, value, …,
            1 when the history has grown past `pn` (default 120 fields) and the store should
            take out its ended purchases, else 0 },
          or { -1, '', 0 } when the id was used for an event with another fingerprint,
          or { -2, '', 0 } when the customer was erased after the purchase (nothing is recorded)
  The last two are what attributing the purchase reads: returned here to save intake two round
  trips per purchase.
]]
--!include lib/base36.lua
local erasedAt = redis.call('GET', KEYS[3])
if erasedAt and tonumber(erasedAt) >= tonumber(ARGV[6]) then return { -2, '', 0 } end
local fingerprint = redis.call('HGET', KEYS[1], 'f')
-- One of 22 characters (key layout 4 and before) is the same event's when it begins with this one.
if fingerprint and string.sub(fingerprint, 1, #ARGV[4]) ~= ARGV[4] then return { -1, '', 0 } end
-- Read before anything is written: a key of another type fails the script with nothing changed.
local sent = redis.call('GET', KEYS[4]) or ''
local checkIns = redis.call('HGETALL', KEYS[5])
local function attribution(count, last, first)
  local pruneAt = tonumber(redis.call('HGET', KEYS[2], 'pn') or '120')
  return { count, last, first, sent, checkIns, redis.call('HLEN', KEYS[2]) > pruneAt and 1 or 0 }
end
-- Records written before fingerprints were kept take this one.
if not fingerprint and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'f', ARGV[4]) end
local seen = redis.call('HGET', KEYS[1], 'h')
if seen then return attribution(tonumber(seen), redis.call('HGET', KEYS[2], 'last') or '', 0) end
local count = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local last = redis.call('HGET', KEYS[2], 'last') or ''
redis.call('HSET', KEYS[1], 'h', count, 'f', ARGV[4])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('HINCRBY', KEYS[2], 'n', 1)
local entry = ARGV[6]
if ARGV[7] and ARGV[7] ~= '' then entry = entry .. ':' .. ARGV[7] end
redis.call('HSET', KEYS[2], 'e:' .. ARGV[5], entry)
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[2], 'ph:' .. ARGV[8], '1') end
if ARGV[9] and ARGV[9] ~= '' then
  local at = tonumber(ARGV[6])
  local known, codes = {}, {}
  for code, flag, time in string.gmatch(redis.call('HGET', KEYS[2], 'cn') or '', '(%l)([01])(%w+)') do
    known[code] = { flag = flag, at = fromBase36(time) }
    codes[#codes + 1] = code
  end
  local changed = false
  for code, flag in string.gmatch(ARGV[9], '(%l)([01])') do
    -- The later purchase's stands; of two made at once, a withdrawal (nothing shows which of
    -- them came later, and consent is taken only when it is the latest word).
    if not known[code] then codes[#codes + 1] = code end
    if not known[code] or at > known[code].at or (at == known[code].at and flag == '0') then
      known[code] = { flag = flag, at = at }
      changed = true
    end
  end
  if changed then
    table.sort(codes)
    local tokens = {}
    for i, code in ipairs(codes) do
      tokens[i] = code .. known[code].flag .. toBase36(known[code].at)
    end
    redis.call('HSET', KEYS[2], 'cn', table.concat(tokens, ' '))
  end
end
if ARGV[1] > last then redis.call('HSET', KEYS[2], 'last', ARGV[1]) end
-- Never shorter: a history kept longer for an earlier purchase's far follow-up (keepUntil) stays so.
local keepMs = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[2]) < keepMs then redis.call('PEXPIRE', KEYS[2], keepMs) end
return attribution(count, last, 1)
