-- GCRA on one key by Redis's clock. KEYS[1] the theoretical arrival time (ms);
-- ARGV[1] emission interval (ms), ARGV[2] burst tolerance (interval × burst, ms).
-- Returns 0 when admitted (and records it), else the ms to wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat + interval - tolerance
if allow_at > now then
  return allow_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, new_tat - now))
return 0
