--[[
  Ledger counting shared by the step-state scripts (included, not called). Counts a state change
  into the hourly aggregate and keeps the per-day count of pending steps in step with the states,
  inside the script that makes the change, so concurrent workers and retries count exactly once.

  countChange(hourKey, dayKey, spec, oldState, newState, wasCounted)
    hourKey    the ledger hour of the change (declared in the caller's KEYS)
    dayKey     the pending count of the step's due day (declared in the caller's KEYS)
    spec       { f = { aggregate fields }, ttl = ms the hour is kept, ch = channel }
    wasCounted whether the step was counted as pending when it was scheduled
  Needs PENDING (lib/pending-states.lua).
]]
local function countChange(hourKey, dayKey, spec, oldState, newState, wasCounted)
  for _, field in ipairs(spec.f) do redis.call('HINCRBY', hourKey, field, 1) end
  redis.call('PEXPIRE', hourKey, spec.ttl)
  -- A day that has passed has expired: nothing to take away, and no key without a TTL.
  if wasCounted and PENDING[oldState] and not PENDING[newState]
    and redis.call('EXISTS', dayKey) == 1 then
    redis.call('HINCRBY', dayKey, spec.ch, -1)
  end
end
