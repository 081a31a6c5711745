--[[
  The stored form of a step record (shared; included, not called). There is one per follow-up,
  pending for months, so the common part is a few characters rather than JSON:

    <state><channel><kind><due>[.<changed>][ <JSON of the other fields>]

  state    s scheduled, n sending, o sent, f failed, k skipped, c cancelled
  channel  e email, s sms, v voice, - none
  kind     t thank-you, c check-in, d discount, u custom, - none
  due      the due time, epoch ms in base 36 (`d`)
  changed  when the state was entered, epoch ms in base 36 (`t`), when set
  JSON     every other field (attempts `a`, provider id `id`, reason `x`, the end of the grace
           period `e` of a step planned late, when a scheduled step's job waits until `w` and
           why `wy` (note-postponed.lua), ...), when any

  A scheduled thank-you email is `set` and eight digits, against some 60 bytes of JSON. A value
  that cannot be written this way (an unknown state, a time that is not a whole number of ms) is
  kept as JSON, as versions of key layout 4 and before kept every step: decodeStep reads both.
  store/step-record.ts reads and writes the same form.

  encodeStep(rec)  the stored form of a decoded record (a table of the JSON fields); a settled
                   step's (neither scheduled nor sending) without the note of a wait (`w`, `wy`)
  decodeStep(raw)  the record (table) of a stored value
  Needs lib/base36.lua.
]]
local STEP_STATE_CODES = {
  scheduled = 's', sending = 'n', sent = 'o', failed = 'f', skipped = 'k', cancelled = 'c'
}
local STEP_CHANNEL_CODES = { email = 'e', sms = 's', voice = 'v' }
local STEP_KIND_CODES = { ['thank-you'] = 't', ['check-in'] = 'c', discount = 'd', custom = 'u' }
local STEP_STATES_BY_CODE, STEP_CHANNELS_BY_CODE, STEP_KINDS_BY_CODE = {}, {}, {}
for name, code in pairs(STEP_STATE_CODES) do STEP_STATES_BY_CODE[code] = name end
for name, code in pairs(STEP_CHANNEL_CODES) do STEP_CHANNELS_BY_CODE[code] = name end
for name, code in pairs(STEP_KIND_CODES) do STEP_KINDS_BY_CODE[code] = name end
local function isWholeMs(n)
  return type(n) == 'number' and n >= 0 and n < 9007199254740992 and n == math.floor(n)
end

local function encodeStep(rec)
  local state = STEP_STATE_CODES[rec.s]
  if not state or not isWholeMs(rec.d) then return cjson.encode(rec) end
  local rest = {}
  -- Why a step's job waits (`w`, `wy`: note-postponed.lua) matters only while it is pending.
  local settled = rec.s ~= 'scheduled' and rec.s ~= 'sending'
  for k, v in pairs(rec) do
    if k ~= 's' and k ~= 'd' and not (settled and (k == 'w' or k == 'wy')) then rest[k] = v end
  end
  local channel, kind = STEP_CHANNEL_CODES[rec.c], STEP_KIND_CODES[rec.k]
  if channel then rest.c = nil else channel = '-' end
  if kind then rest.k = nil else kind = '-' end
  local changed = ''
  if isWholeMs(rec.t) then
    changed = '.' .. toBase36(rec.t)
    rest.t = nil
  end
  local stored = state .. channel .. kind .. toBase36(rec.d) .. changed
  if next(rest) ~= nil then stored = stored .. ' ' .. cjson.encode(rest) end
  return stored
end

local function decodeStep(raw)
  if string.sub(raw, 1, 1) == '{' then return cjson.decode(raw) end
  local state, channel, kind, due, changed, json =
    string.match(raw, '^(.)(.)(.)([0-9a-z]+)%.?([0-9a-z]*) ?(.*)$')
  if not STEP_STATES_BY_CODE[state] then
    -- Its length only: a record may hold a customer's reply, and this message is logged.
    error('a step record in an unknown form (' .. #raw .. ' characters)')
  end
  local rec = json ~= '' and cjson.decode(json) or {}
  rec.s = STEP_STATES_BY_CODE[state]
  rec.d = fromBase36(due)
  if changed ~= '' then rec.t = fromBase36(changed) end
  if channel ~= '-' then rec.c = STEP_CHANNELS_BY_CODE[channel] end
  if kind ~= '-' then rec.k = STEP_KINDS_BY_CODE[kind] end
  return rec
end
