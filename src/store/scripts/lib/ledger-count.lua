--[[
  Ledger counting shared by the step-state scripts (included, not called). Counts a state change
  into the hourly aggregate and keeps the per-day count of pending steps in step with the states,
  inside the script that makes the change, so concurrent workers and retries count exactly once.

  pendingField(generation, rec, channel, ruleId)
    the field of the due day's pending count a step is counted under: `<channel>|<ruleId>|<q>`,
    q the quarter hour of the UTC day it falls due in (0-95), so the schedule can be shown by day
    in any time zone; steps of an event record without a rules generation (`g`, planned before
    2026-12-02) were counted under `<channel>` alone.

  countChange(hourKey, dayKey, spec, oldState, newState, wasCounted, rec, generation)
    hourKey    the ledger hour of the change (declared in the caller's KEYS)
    dayKey     the pending count of the step's due day (declared in the caller's KEYS)
    spec       { f = { aggregate fields }, ttl = ms the hour is kept, ch = channel, r = rule id }
    wasCounted whether the step was counted as pending when it was scheduled
    rec        the step record as it was counted: its due time, and its channel (`c`), which is
               the one it was scheduled or last re-planned with; spec.ch for a record without one
               (a step sent on another channel after a rules edit is still taken off the count
               it was added to)
    generation the event record's `g` (false when it has none)
  Needs PENDING (lib/pending-states.lua).
]]
local function pendingField(generation, rec, channel, ruleId)
  if not generation then return channel end
  return channel .. '|' .. ruleId .. '|' .. math.floor((rec.d % 86400000) / 900000)
end

local function countChange(hourKey, dayKey, spec, oldState, newState, wasCounted, rec, generation)
  for _, field in ipairs(spec.f) do redis.call('HINCRBY', hourKey, field, 1) end
  redis.call('PEXPIRE', hourKey, spec.ttl)
  -- A day that has passed has expired: nothing to take away, and no key without a TTL.
  if wasCounted and PENDING[oldState] and not PENDING[newState]
    and redis.call('EXISTS', dayKey) == 1 then
    redis.call('HINCRBY', dayKey, pendingField(generation, rec, rec.c or spec.ch, spec.r or ''), -1)
  end
end
