--[[
  Ends an alert job's turn with an owner's pending alerts: removes exactly the reply ids it sent
  (or gave up on), so replies filed meanwhile stay pending, and gives up the lease if it is still
  this job's. The ids are removed also when the lease has passed on (it outlived its time): they
  went out, and must not go again.

  Input:
    KEYS[1] the owner's pending alerts (list of reply ids)
    KEYS[2] the owner's alert lease

    ARGV[1] this job's lease token
    ARGV[2…] the reply ids to remove (none: only give up the lease)

  Output: 1 the lease was this job's (released), 0 it was not
]]
for i = 2, #ARGV do
  redis.call('LREM', KEYS[1], 1, ARGV[i])
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1
