--[[
  Writes an SMS's reference (which step its sid was sent for), and reads in the same step the
  statuses Twilio reported before it (keep-early-sms-status.lua), for the worker to apply now.
  They stay until the worker has applied them and deletes them (a worker that fails midway
  writes the reference again and gets them again), or until they expire.

  Input:
    KEYS[1] the SMS's reference (`sid:<sid>`)
    KEYS[2] its statuses kept before the reference (list, oldest first)

    ARGV[1] the reference
    ARGV[2] when it expires (epoch ms)

  Output: the statuses kept before the reference, oldest first (JSON each); empty when none
]]
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return redis.call('LRANGE', KEYS[2], 0, -1)
