-- Settle a batch of successful deliveries: each is done (removed for good) or rescheduled
-- (the same task, payload kept, due again after a delay, a new round: failures and crashes
-- counted from 0). Applied only where the task is leased under the given token.
-- On a fair queue (KEYS gm and hold given) a delay 'h<ms>' holds the queue: the task is due
-- again at once (claim gives it back its place), and no claim takes anything for <ms>.
-- KEYS: lease, data, dlv, due, [gm, hold, vt, ready]. ARGV: wake channel, this call's nonce,
-- then per task: id, token, delay ms ('' = done). Returns 1/0 per task. A reschedule run again
-- (same nonce) answers 1 (see meta in common.lua); a done task run again answers 0 (nothing of
-- it is left to tell).
local ids = {}
for i = 3, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local ms = redis.call('HMGET', KEYS[3], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local done, moved, again, hs, res = {}, {}, {}, {}, {}
local hold = 0
for i = 1, #ids do
  local id = ids[i]
  local tok, _, _, settled = meta(ms[i])
  if tok and tok == ARGV[3 * i + 1] and not sc[i] and settled ~= '' and settled == ARGV[2] then
    res[i] = 1 -- this very reschedule, run again: applied before
  elseif tok and tok == ARGV[3 * i + 1] and sc[i] then
    res[i] = 1
    local delay = ARGV[3 * i + 2]
    if delay == '' then
      done[#done + 1] = id
    else
      moved[#moved + 1] = id
      local held = string.match(delay, '^h(%d+)$')
      if held and KEYS[6] then
        hold = math.max(hold, tonumber(held))
        again[#again + 1] = now
      else
        again[#again + 1] = now + tonumber(held or delay)
      end
      again[#again + 1] = id
      hs[#hs + 1] = id; hs[#hs + 1] = tok .. ' 0 0 ' .. ARGV[2]
    end
  else
    res[i] = 0
  end
end
if #done > 0 then
  redis.call('ZREM', KEYS[1], unpack(done))
  redis.call('HDEL', KEYS[2], unpack(done))
  redis.call('HDEL', KEYS[3], unpack(done))
  narrowed(KEYS[2]); narrowed(KEYS[3])
  if KEYS[5] then
    redis.call('HDEL', KEYS[5], unpack(done))
    narrowed(KEYS[5])
    if redis.call('ZCARD', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[4]) == 0
      and redis.call('ZCARD', KEYS[8]) == 0 then
      redis.call('DEL', KEYS[7]) -- the last task done: the fair order starts afresh
    end
  end
end
if hold > 0 then
  local till = now + hold
  if tonumber(redis.call('GET', KEYS[6]) or '0') < till then
    redis.call('SET', KEYS[6], string.format('%.0f', till), 'PX', hold)
  end
end
if #moved > 0 then
  redis.call('ZREM', KEYS[1], unpack(moved))
  redis.call('HSET', KEYS[3], unpack(hs))
  redis.call('ZADD', KEYS[4], unpack(again))
  redis.call('SPUBLISH', ARGV[1], '1')
end
return res
