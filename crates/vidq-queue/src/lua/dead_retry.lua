-- Move dead tasks back to due now (one id, or the oldest `limit`), in a new round: failures
-- and crashes counted from 0, the token kept (the next claim issues a newer one).
-- KEYS: dead, why, dlv, due. ARGV: wake channel, limit, [id]. Returns the count.
local ids
if ARGV[3] then
  if redis.call('ZSCORE', KEYS[1], ARGV[3]) then ids = {ARGV[3]} else ids = {} end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
end
if #ids == 0 then return 0 end
local za, hs = {}, {}
local ms = redis.call('HMGET', KEYS[3], unpack(ids))
for i = 1, #ids do
  za[#za + 1] = now; za[#za + 1] = ids[i]
  local tok = meta(ms[i])
  if tok then hs[#hs + 1] = ids[i]; hs[#hs + 1] = tok .. ' 0 0' end
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
if #hs > 0 then redis.call('HSET', KEYS[3], unpack(hs)) end
redis.call('ZADD', KEYS[4], unpack(za))
redis.call('SPUBLISH', ARGV[1], '1')
return #ids
