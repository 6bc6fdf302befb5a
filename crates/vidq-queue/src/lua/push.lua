-- Push tasks under their ids; an id that exists (waiting, leased or dead) is left as it is,
-- except that with `revive` a dead one goes back to due after the delay, in a new round.
-- KEYS: data, due, lease, dead, why, dlv.
-- ARGV: wake channel, revive ('1' | '0'), then per task: id, delay ms, payload.
-- Returns per task: 'created', 'waiting', 'leased', 'dead' or 'revived'.
local revive = ARGV[2] == '1'
local ids = {}
for i = 3, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local have = redis.call('HMGET', KEYS[1], unpack(ids))
local hs, za, res, seen = {}, {}, {}, {}
local woken = false
for i = 1, #ids do
  local id = ids[i]
  local delay = tonumber(ARGV[3 * i + 1])
  local state = nil
  if seen[id] then
    state = 'waiting'
  elseif have[i] then
    if redis.call('ZSCORE', KEYS[3], id) then state = 'leased'
    elseif redis.call('ZSCORE', KEYS[2], id) then state = 'waiting'
    elseif redis.call('ZSCORE', KEYS[4], id) then
      state = 'dead'
      if revive then
        redis.call('ZREM', KEYS[4], id)
        redis.call('HDEL', KEYS[5], id)
        local tok = meta(redis.call('HGET', KEYS[6], id))
        if tok then redis.call('HSET', KEYS[6], id, tok .. ' 0 0') end
        redis.call('ZADD', KEYS[2], now + delay, id)
        woken = true
        state = 'revived'
      end
    end -- else: a payload in no set (never written so; repaired by this push)
  end
  if state then
    res[i] = state
  else
    seen[id] = true
    hs[#hs + 1] = id; hs[#hs + 1] = ARGV[3 * i + 2]
    za[#za + 1] = now + delay; za[#za + 1] = id
    res[i] = 'created'
  end
end
if #hs > 0 then
  redis.call('HSET', KEYS[1], unpack(hs))
  redis.call('ZADD', KEYS[2], unpack(za))
  woken = true
end
if woken then redis.call('PUBLISH', ARGV[1], '1') end
return res
