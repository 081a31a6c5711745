--[[
  Which suppression lists hold any of the given members: one round trip for every channel and
  scope a purchase is checked against (read-only). Intake asks the same with its order read
  (read-order.lua).

  Input:
    KEYS[1 + i] a suppression list (set), i from 0

    ARGV[1] the members to look for in each list (JSON array of arrays, in the order of KEYS)

  Output: per list, 1 if it holds any of its members, else 0
]]
--!include lib/opt-out-flags.lua
return optOutFlags(KEYS, cjson.decode(ARGV[1]))
