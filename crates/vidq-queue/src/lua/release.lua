-- Hand leases back to due at once (a clean stop): neither a failure nor a crash; the next
-- claim issues a new token, so a retry of this script after a lost reply changes nothing.
-- KEYS: lease, dlv, due. ARGV: wake channel, then id1, token1, ... Returns the count.
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local ms = redis.call('HMGET', KEYS[2], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local back, za = {}, {}
for i = 1, #ids do
  local tok = meta(ms[i])
  if tok and tok == ARGV[2 * i + 1] and sc[i] then
    back[#back + 1] = ids[i]
    za[#za + 1] = now; za[#za + 1] = ids[i]
  end
end
if #back > 0 then
  redis.call('ZREM', KEYS[1], unpack(back))
  redis.call('ZADD', KEYS[3], unpack(za))
  redis.call('SPUBLISH', ARGV[1], '1')
end
return #back
