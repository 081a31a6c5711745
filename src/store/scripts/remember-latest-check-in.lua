--[[
  Remembers the check-in SMS a number's replies are filed against, unless a later one is
  remembered already: the bookkeeping of an older check-in, redone by its retried job after a
  newer one went to the same number, must not take its replies. The reference expires a fixed
  time after its check-in was sent, so its expiry tells when that was: a reference expiring later
  than this one would is for a later check-in (one remembered without an expiry, or by a version
  that counted it from its bookkeeping, is compared as it stands, and replaced by a later one).

  Input:
    KEYS[1] the number's latest check-in (string: the step's reference)

    ARGV[1] the check-in's reference (SmsReferences: `<eventId>\n<stepId>[\n@<shard>]`)
    ARGV[2] when it expires (epoch ms): its sent time and the references' lifetime

  Output: 1 remembered, 0 a later check-in is remembered already (left as it is)
]]
if redis.call('PEXPIRETIME', KEYS[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
