--[[
  Which of the calls Twilio's Calls list shows to a number a follow-up may take for the call its
  earlier attempt placed (read-only): the earliest bound to no follow-up, or to this one. A call
  bound to another follow-up (swap-call.lua) is that one's (another purchase's call to the same
  number), never taken for this one's.

  Input:
    KEYS[1 + i] each call's binding (string: the follow-up id), i from 0, earliest call first

    ARGV[1] the follow-up id asking

  Output: the position in KEYS (from 1) of the first call bound to none or to ARGV[1]; 0 when
          every one is bound to another follow-up
]]
for i, key in ipairs(KEYS) do
  local bound = redis.call('GET', key)
  if not bound or bound == ARGV[1] then return i end
end
return 0
