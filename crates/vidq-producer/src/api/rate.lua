-- Per-token rate limit of the HTTP API, shared by every replica: GCRA on Redis's clock.
-- KEYS[1] the token's theoretical arrival time (Unix ms, fractional)
-- ARGV[1] emission interval ms (1000 / rate)   ARGV[2] burst tolerance ms ((burst - 1) x interval)
-- Returns 0 when the request is admitted (and records it), or the ms to wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
if tat - now > burst then
  return math.max(1, math.ceil(tat - now - burst))
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now) + 1000)
return 0
