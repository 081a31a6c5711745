--[[
  Takes a schedule bucket for promotion: one promoter at a time holds its lease and reads the
  next slice of its step references. A bucket that has expired or emptied leaves the index. The
  job watch's buckets (store/job-watch.ts) are taken the same way, with their own keys.

  Input:
    KEYS[1] schedule bucket (list of step references)
    KEYS[2] schedule index (sorted set of bucket numbers)
    KEYS[3] the bucket's promotion lease

    ARGV[1] the bucket number (its member in the index)
    ARGV[2] this promoter's lease token
    ARGV[3] lease (ms)
    ARGV[4] at most this many references to read

  Output:
    { 1, references }  leased; the first references of the bucket
    { 0 }              the bucket is gone (removed from the index)
    { -1 }             another promoter holds the lease
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return { 0 }
end
if not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then return { -1 } end
return { 1, redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1) }
