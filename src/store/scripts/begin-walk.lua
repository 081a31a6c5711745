--[[
  Notes that a re-planning walk of a shard's schedule began under a rules generation, keeping the
  newest: from then on a purchase filed in the schedule under an older generation is noted for a
  re-plan (schedule-steps.lua), as the walk may already have passed its bucket.

  Input:
    KEYS[1] the generation the shard's newest walk began for (string)

    ARGV[1] the generation of the walk that begins

  Output: the generation kept (the newer of the two)
]]
local kept = tonumber(redis.call('GET', KEYS[1]) or '0')
local generation = tonumber(ARGV[1])
if generation > kept then
  redis.call('SET', KEYS[1], ARGV[1])
  return generation
end
return kept
