--[[
  Erases what a purchase's records say about the customer (right to erasure): the stored purchase
  goes, the summary (order and name) goes, how it was filed with a thank-you group (`ty`) and
  the purchases its thank-you listed (`tj`), which name the customer's other purchases, go, and
  each step record keeps only its state, times, channel, kind, counts and the code of its reason;
  provider message ids (the latest and the earlier ones a resend or retry kept, `pid`), reason
  texts, delivery reports, the hash of the discount code it sent (`dc`: erasure revoked the code before) and
  replies go (the step's replies `y:<stepId>:<n>` too, and the keys of the messages they came in,
  `yr:`; only their count `yn:` stays), and so does a cancel asked while a step was being sent
  (`cx:<stepId>`, whose reason holds the operator's note; the record's stop marker cancels any
  later claim instead).
  What remains is anonymous and lets a late job find its step ended. The record is stopped with
  ARGV[1] (stop-event.lua's marker): a step taken over from a dead sender is cancelled, not sent,
  and a reply that arrives later (add-reply.lua) is not filed.

  Input:
    KEYS[1] event record (hash: `s:<stepId>` step records, `m` summary, `p0`, `p1`, … the stored
            purchase, `ty` its thank-you filing, `tj` the purchases its thank-you listed, `event`
            the purchase as versions before 2026-11-30 kept it)
    KEYS[2] stored purchase key of versions before 2026-12-03

    ARGV[1] the stop reason, `erased: …`

  Output: how many step records were scrubbed
]]
--!include lib/base36.lua
--!include lib/step-codec.lua
--!include lib/scrub-step.lua
--!include lib/purchase-fields.lua
redis.call('DEL', KEYS[2])
-- Only on a record that exists: a new key here would have no expiry.
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'stop', ARGV[1]) end
deletePurchase(KEYS[1])
redis.call('HDEL', KEYS[1], 'm', 'event', 'ty', 'tj')
local fields = redis.call('HGETALL', KEYS[1])
local scrubbed = 0
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 's:' then
    redis.call('HSET', KEYS[1], fields[i], encodeStep(scrubStep(decodeStep(fields[i + 1]))))
    scrubbed = scrubbed + 1
  elseif string.sub(fields[i], 1, 2) == 'y:' or string.sub(fields[i], 1, 3) == 'yr:'
    or string.sub(fields[i], 1, 3) == 'cx:' then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
return scrubbed
