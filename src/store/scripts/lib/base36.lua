--[[
  Whole numbers (epoch ms, counts) in base 36 (shared; included, not called): 8 characters for
  an epoch ms of this century against 13 in decimal. Exact up to 2^53.

  toBase36(n)       n >= 0, whole
  fromBase36(text)  digits 0-9 and a-z
]]
local BASE36 = '0123456789abcdefghijklmnopqrstuvwxyz'

local function toBase36(n)
  if n == 0 then return '0' end
  local digits = {}
  while n > 0 do
    local digit = n % 36
    digits[#digits + 1] = string.sub(BASE36, digit + 1, digit + 1)
    n = (n - digit) / 36
  end
  return string.reverse(table.concat(digits))
end

local function fromBase36(text)
  local n = 0
  for i = 1, #text do
    n = n * 36 + (string.find(BASE36, string.sub(text, i, i), 1, true) - 1)
  end
  return n
end
