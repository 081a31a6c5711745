--[[
  Reads a step record for a state change (shared; included, not called).

  readStep(recordKey, field, now, countsChange, day)
    returns raw (false when the step has no record yet) and the decoded record (a fresh
    scheduled one, due now, when there is none); or raw and nil when the change is to be counted
    and the record is due on another day than `day`, whose pending count the caller holds in KEYS.
  Needs decodeStep (lib/step-codec.lua).
]]
local function readStep(recordKey, field, now, countsChange, day)
  local raw = redis.call('HGET', recordKey, field)
  if not raw then return raw, { s = 'scheduled', t = now, d = now, a = 0 } end
  local rec = decodeStep(raw)
  if countsChange and math.floor(rec.d / 86400000) ~= tonumber(day) then return raw, nil end
  return raw, rec
end
