--[[
  Takes an owner's report lease for one scheduled run and reads their report mark (the local
  date, YYYY-MM-DD, up to which, exclusive, the reports sent to them cover), in one step: one run
  at a time works out and sends an owner's report (a stalled run taken again while its first
  attempt is still sending, or the run sent for one no worker took beside its scheduler's, would
  each read the same mark and send the same days). With no mark yet (the owner's first run), it
  is set to ARGV[3]. The lease expires on its own when its holder dies.

  Input:
    KEYS[1] the owner's report mark
    KEYS[2] the owner's report lease (string: the holder's token)

    ARGV[1] this run's lease token
    ARGV[2] lease (ms)
    ARGV[3] the mark to set when there is none (the run's first date)
    ARGV[4] how long a mark set here is kept (ms)

  Output:
    { 1, mark }  leased; the owner's mark
    { 0, ms }    another run holds the lease, for at most this many ms more
]]
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return { 0, redis.call('PTTL', KEYS[2]) }
end
redis.call('SET', KEYS[1], ARGV[3], 'NX', 'PX', ARGV[4])
return { 1, redis.call('GET', KEYS[1]) }
