-- Admission of one upstream call, shared by every replica (all keys share the {limits} tag).
-- Every instant, the budget's day and the wait until the next UTC day come from Redis's TIME,
-- never from a worker's clock.
-- KEYS[1] rate (GCRA theoretical arrival time, ms)   KEYS[2] in-flight jobs (zset id -> expiry ms)
-- KEYS[3] today's figures (hash: day = UTC day number, submissions, spent), reset on a new day
-- ARGV[1] emission interval ms (0: no rate limit)   ARGV[2] burst tolerance ms
-- ARGV[3] "submit" or "call"   ARGV[4] job id   ARGV[5] max jobs in flight (0: no cap)
-- ARGV[6] in-flight entry lifetime ms   ARGV[7] daily budget (0: none)
-- Returns {0, new_slot} when admitted (and records it; new_slot is 1 when this admission took
-- the job's concurrent-job slot, 0 when the job held it already, say a delivery whose call is
-- still in flight), or {wait_ms, reason} when not.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = math.floor(now / 86400000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local submit = ARGV[3] == 'submit'
local cap = tonumber(ARGV[5])

if submit then
  if redis.call('HGET', KEYS[3], 'day') ~= tostring(day) then
    redis.call('DEL', KEYS[3])
    redis.call('HSET', KEYS[3], 'day', day)
  end
  local budget = tonumber(ARGV[7])
  if budget > 0 and tonumber(redis.call('HGET', KEYS[3], 'submissions') or '0') >= budget then
    return {(day + 1) * 86400000 - now, 'daily submission budget spent'}
  end
  if cap > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if not redis.call('ZSCORE', KEYS[2], ARGV[4]) and redis.call('ZCARD', KEYS[2]) >= cap then
      return {1000, 'upstream concurrent job cap reached'}
    end
  end
end

if interval > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  if tat - now > burst then
    return {tat - now - burst, 'upstream request rate limit'}
  end
  redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
end

local new_slot = 0
if submit then
  if cap > 0 then
    if not redis.call('ZSCORE', KEYS[2], ARGV[4]) then new_slot = 1 end
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[4])
  end
  redis.call('HINCRBY', KEYS[3], 'submissions', 1)
end
return {0, new_slot}
