--[[
  Ends a scheduled report run's turn with an owner's reports: moves their report mark (the local
  date, YYYY-MM-DD, up to which, exclusive, the reports sent to them cover) forward to the end of
  the report it sent, never back, so a late retry of an older run, or a run taken twice, cannot
  make the next report cover days reported already; and gives up the owner's report lease
  (claim-report-mark.lua) if it is still this run's. The mark moves also when the lease has passed
  on (the run outlived it): the report went out.

  Input:
    KEYS[1]   the owner's report mark
    KEYS[2]   the owner's report lease

    ARGV[1]   the local date the sent report's period ends at (exclusive), YYYY-MM-DD; '' when
              nothing was sent (only give up the lease)
    ARGV[2]   how long the mark is kept (ms)
    ARGV[3]   this run's lease token

  Output: 1 the lease was this run's (released), 0 it was not
]]
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if not current or current < ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
end
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[2])
return 1
