-- Push tasks under their ids; an id that exists (waiting, leased or dead) is left as it is,
-- except that with `revive` a dead one goes back to due after the delay, in a new round.
-- With `grouped`, each task also names its place in a fair queue, "<band> <group>" (stored
-- in gm as "<band> <seq> <group>", seq = push order by Redis time).
-- KEYS: data, due, lease, dead, why, dlv, ready, gm, vt (its '%S': the last seq given).
-- ARGV: wake channel, revive ('1' | '0'), grouped ('1' | '0'), then per task: id, delay ms,
-- payload, [place].
-- Returns per task: 'created', 'waiting', 'leased', 'dead' or 'revived'.
local revive = ARGV[2] == '1'
local step = 3
if ARGV[3] == '1' then step = 4 end
local ids = {}
for i = 4, #ARGV, step do ids[#ids + 1] = ARGV[i] end
local have = redis.call('HMGET', KEYS[1], unpack(ids))
local hs, za, res, seen, gm = {}, {}, {}, {}, {}
local seq = nil
local woken = false
for i = 1, #ids do
  local id = ids[i]
  local at = 4 + step * (i - 1)
  local delay = tonumber(ARGV[at + 1])
  local state = nil
  if seen[id] then
    state = 'waiting'
  elseif have[i] then
    if redis.call('ZSCORE', KEYS[3], id) then state = 'leased'
    elseif redis.call('ZSCORE', KEYS[2], id) or redis.call('ZSCORE', KEYS[7], id) then
      state = 'waiting'
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
    hs[#hs + 1] = id; hs[#hs + 1] = ARGV[at + 2]
    if step == 4 then
      local band, g = string.match(ARGV[at + 3], '^(%d) (%S+)$')
      if not seq then seq = math.max(tonumber(us), tonumber(redis.call('HGET', KEYS[9], '%S') or '0') + 1)
      else seq = seq + 1 end
      gm[#gm + 1] = id; gm[#gm + 1] = band .. ' ' .. string.format('%.0f', seq) .. ' ' .. g
    end
    za[#za + 1] = now + delay; za[#za + 1] = id
    res[i] = 'created'
  end
end
if #hs > 0 then
  widen(KEYS[1])
  redis.call('HSET', KEYS[1], unpack(hs))
  redis.call('ZADD', KEYS[2], unpack(za))
  if #gm > 0 then
    widen(KEYS[8])
    redis.call('HSET', KEYS[8], unpack(gm))
    redis.call('HSET', KEYS[9], '%S', string.format('%.0f', seq))
  end
  woken = true
end
if woken then redis.call('SPUBLISH', ARGV[1], '1') end
return res
