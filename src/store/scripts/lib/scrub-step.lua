--[[
  What erasure leaves of a step record (shared; included, not called): its state, times, channel,
  kind, counts and the code of its reason.

  scrubStep(rec)  drops the rest of a decoded record in place: the reason's text, the provider's
                  message ids (`id`, and `pid` kept by resends), delivery reports (`dl`, `de`),
                  the reply (`rp`, `rt`), the sent discount code's hash (`dc`) and the mark of
                  bookkeeping still to do after a send (`bk`); returns it
]]
local function scrubStep(rec)
  if rec.x then rec.x = string.match(rec.x, '^(.-): ') or rec.x end
  rec.id = nil
  rec.pid = nil
  rec.dl = nil
  rec.de = nil
  rec.rp = nil
  rec.rt = nil
  rec.dc = nil
  rec.bk = nil
  return rec
end
