--[[
  Finishes a promoter's slice of a schedule bucket: drops the references it promoted, removes the
  bucket from the index once it is empty, and gives up the lease. Nothing happens when the lease
  has passed to another promoter meanwhile: that one promotes the same steps again, which BullMQ's
  deterministic job ids make harmless. The job watch's buckets (store/job-watch.ts) are released
  the same way, with their own keys.

  Input:
    KEYS[1] schedule bucket (list of step references)
    KEYS[2] schedule index
    KEYS[3] the bucket's promotion lease

    ARGV[1] the bucket number (its member in the index)
    ARGV[2] this promoter's lease token
    ARGV[3] how many references from the start were promoted

  Output: 1 released, 0 the lease was no longer this promoter's
]]
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return 0 end
redis.call('LTRIM', KEYS[1], tonumber(ARGV[3]), -1)
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('DEL', KEYS[3])
return 1
