--[[
  The generation of a rules version: the first worker to load a content hash gives it the next
  number, every later load of the same content gets that number back, so generations order rule
  versions the same way for every worker of a rolling deploy.

  Input:
    KEYS[1] rules generations (hash: `n` the latest generation, `v:<version>` each version's,
            `w:<generation>` when a re-planning walk under it completed)

    ARGV[1] the rules version (content hash)

  Output: { this version's generation, the latest generation }
]]
local field = 'v:' .. ARGV[1]
local generation = redis.call('HGET', KEYS[1], field)
if not generation then
  generation = redis.call('HINCRBY', KEYS[1], 'n', 1)
  redis.call('HSET', KEYS[1], field, generation)
end
return { tonumber(generation), tonumber(redis.call('HGET', KEYS[1], 'n')) }
