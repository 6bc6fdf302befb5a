-- Records when a job's next task is expected, by Redis's clock: now + a relative delay.
-- KEYS[1] {jobs}:active (zset id -> expected-by Unix ms)
-- ARGV[1] job id   ARGV[2] delay ms   ARGV[3] "NX" to leave an existing entry alone, or ""
-- Returns the expected-by time written (or that would have been).
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
if ARGV[3] == 'NX' then
  redis.call('ZADD', KEYS[1], 'NX', at, ARGV[1])
else
  redis.call('ZADD', KEYS[1], at, ARGV[1])
end
return at
