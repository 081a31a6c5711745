--[[
  Takes an owner's pending alerts for one alert email: one alert job at a time holds the owner's
  lease (a retried job and the job at the window's end may run at once on two workers), and reads
  the reply ids it is to send. The lease expires on its own when its holder dies.

  Input:
    KEYS[1] the owner's pending alerts (list of reply ids)
    KEYS[2] the owner's alert lease (string: the holder's token)

    ARGV[1] this job's lease token
    ARGV[2] lease (ms)

  Output:
    { 1, reply ids }  leased; every pending reply id, oldest first
    { 0, ms }         another job holds the lease, for at most this many ms more
]]
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return { 0, redis.call('PTTL', KEYS[2]) }
end
return { 1, redis.call('LRANGE', KEYS[1], 0, -1) }
