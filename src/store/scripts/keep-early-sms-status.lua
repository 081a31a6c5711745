--[[
  Keeps a status Twilio reported for an SMS whose reference (which step its sid was sent for) is
  not written yet: Twilio may post `queued`, `sent`, even `delivered`, before the worker that sent
  the message has stored the reference after the API call returned. remember-sms.lua hands the
  kept statuses to that worker as it writes the reference, in the same step as this one reads it,
  so a status is either kept here and handed over, or finds the reference written. Both keys are
  global (the `{…global}` tag), by the message's sid; the list holds statuses, error codes and
  times, nothing about the customer.

  Input:
    KEYS[1] the SMS's reference (`sid:<sid>`)
    KEYS[2] its statuses kept before the reference (list, oldest first)

    ARGV[1] the status as kept (JSON: `s` status, `e` error code, `at` when it came, epoch ms)
    ARGV[2] how long the statuses are kept (ms), from this one
    ARGV[3] how many are kept at most (the earliest go)

  Output: 1 kept, 0 the reference is written: handle the status as usual (nothing kept)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
