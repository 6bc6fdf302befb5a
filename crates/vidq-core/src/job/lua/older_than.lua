-- The oldest entries of an index scored at least an age before Redis's clock.
-- KEYS[1] a zset scored by Unix ms
-- ARGV[1] age ms (entries scored at or before now - age)   ARGV[2] most entries returned
-- Returns {member, score, member, score, ...}, oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - tonumber(ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[2]))
