-- Settle a batch of successful deliveries: each is done (removed for good) or rescheduled
-- (the same task, payload kept, due again after a delay, a new round: failures and crashes
-- counted from 0). Applied only where the task is leased under the given token.
-- KEYS: lease, data, dlv, due. ARGV: wake channel, then per task: id, token, delay ms
-- ('' = done). Returns 1/0 per task.
local ids = {}
for i = 2, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local ms = redis.call('HMGET', KEYS[3], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local done, moved, again, hs, res = {}, {}, {}, {}, {}
for i = 1, #ids do
  local id = ids[i]
  local tok = meta(ms[i])
  if tok and tok == ARGV[3 * i] and sc[i] then
    res[i] = 1
    local delay = ARGV[3 * i + 1]
    if delay == '' then
      done[#done + 1] = id
    else
      moved[#moved + 1] = id
      again[#again + 1] = now + tonumber(delay); again[#again + 1] = id
      hs[#hs + 1] = id; hs[#hs + 1] = tok .. ' 0 0'
    end
  else
    res[i] = 0
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
  redis.call('HDEL', KEYS[2], unpack(done))
  redis.call('HDEL', KEYS[3], unpack(done))
end
if #moved > 0 then
  redis.call('ZREM', KEYS[1], unpack(moved))
  redis.call('HSET', KEYS[3], unpack(hs))
  redis.call('ZADD', KEYS[4], unpack(again))
  redis.call('PUBLISH', ARGV[1], '1')
end
return res
