-- Renew a batch of leases still held under the given tokens, to `lease ms` from now.
-- KEYS: lease, dlv. ARGV: lease ms, id1, token1, ... Returns the ids whose lease was lost.
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {} end
local ms = redis.call('HMGET', KEYS[2], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local deadline = now + tonumber(ARGV[1])
local za, lost = {}, {}
for i = 1, #ids do
  local tok = meta(ms[i])
  if tok and tok == ARGV[2 * i + 1] and sc[i] then
    za[#za + 1] = deadline; za[#za + 1] = ids[i]
  else
    lost[#lost + 1] = ids[i]
  end
end
if #za > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(za)) end
return lost
