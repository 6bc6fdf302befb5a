-- End one delivery that failed: back to due after a delay (one more handled failure), or to
-- the dead set.
-- KEYS: lease, dlv, due, dead, why.
-- ARGV: id, token, mode ('retry' | 'dead'), delay ms, reason, wake channel, this call's nonce
-- (kept in the task's meta, see common.lua: the same call run again answers 1).
-- Returns 1 if applied (or applied before by this very call), 0 if the token was stale.
local tok, f, c, settled = meta(redis.call('HGET', KEYS[2], ARGV[1]))
local nonce = ARGV[7] or ''
if tok == ARGV[2] and nonce ~= '' and settled == nonce and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 1 -- this very call, run again (a lost reply resent): applied before
end
if not tok or tok ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == 'dead' then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[1], tok .. ' ' .. f .. ' ' .. c .. ' ' .. nonce)
else
  redis.call('HSET', KEYS[2], ARGV[1], tok .. ' ' .. (f + 1) .. ' ' .. c .. ' ' .. nonce)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('SPUBLISH', ARGV[6], '1')
end
return 1
