-- Admission of one upstream call, shared by every replica (all keys share the {limits} tag).
-- KEYS[1] rate (GCRA theoretical arrival time, ms)   KEYS[2] in-flight jobs (zset id -> expiry ms)
-- KEYS[3] today's submission count
-- ARGV[1] now ms   ARGV[2] emission interval ms (0: no rate limit)   ARGV[3] burst tolerance ms
-- ARGV[4] "submit" or "call"   ARGV[5] job id   ARGV[6] max jobs in flight (0: no cap)
-- ARGV[7] in-flight entry lifetime ms   ARGV[8] daily budget (0: none)   ARGV[9] ms to day end
-- Returns {0} when admitted (and records it), or {wait_ms, reason} when not.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local submit = ARGV[4] == 'submit'

if submit then
  local budget = tonumber(ARGV[8])
  if budget > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= budget then
    return {tonumber(ARGV[9]), 'daily submission budget spent'}
  end
  local cap = tonumber(ARGV[6])
  if cap > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if not redis.call('ZSCORE', KEYS[2], ARGV[5]) and redis.call('ZCARD', KEYS[2]) >= cap then
      return {1000, 'upstream concurrent job cap reached'}
    end
  end
end

local tat = now
if interval > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  if tat - now > burst then
    return {tat - now - burst, 'upstream request rate limit'}
  end
  redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
end

if submit then
  if tonumber(ARGV[6]) > 0 then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[5])
  end
  redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[9]) + 86400000)
end
return {0}
