--[[
  Which of the calls Twilio's Calls list shows to a number a follow-up may take for the call its
  earlier attempt placed, and takes it: the earliest bound to no follow-up, or to this one. A call
  bound to another follow-up (swap-call.lua, or this script for another retry) is that one's
  (another purchase's call to the same number), never taken for this one's. An unbound call is
  bound to the asker in the same step, so two retries asking at once about the same number never
  both take one call.

  Input:
    KEYS[1 + i] each call's binding (string: the follow-up id), i from 0, earliest call first

    ARGV[1] the follow-up id asking
    ARGV[2] keep a binding made here this long (ms)

  Output: the position in KEYS (from 1) of the call taken; 0 when every one is bound to another
          follow-up (nothing written)
]]
for i, key in ipairs(KEYS) do
  local bound = redis.call('GET', key)
  if not bound then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    return i
  end
  if bound == ARGV[1] then return i end
end
return 0
