-- States in which a step still waits to be sent (shared; included, not called).
local PENDING = { scheduled = true, sending = true }
