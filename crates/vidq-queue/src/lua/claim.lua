-- Claim: expired leases back to due (a crash each: its worker stopped renewing), or to the
-- dead set past max crashes; old dead tasks trimmed; at most N due tasks leased, each with a
-- fresh token; the next wake-up time reported.
-- KEYS: due, lease, data, dlv, dead, why.
-- ARGV: max claim, lease ms, max crashes, dead ttl ms, reclaim/trim limit.
-- Returns {next, now, id1, token1, due1, attempt1, payload1, ...}; `next` is the earliest due
-- time or lease deadline (ms), or '' when both sets are empty.
-- A paused queue (its `paused` key, beside `due` in the queue's slot) is not claimed: nothing
-- leased, no next time (workers wait their idle poll or the wake-up resume publishes).
if redis.call('EXISTS', string.sub(KEYS[1], 1, -4) .. 'paused') == 1 then
  return {'', tostring(now)}
end
local n = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local maxc = tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
if #expired > 0 then
  redis.call('ZREM', KEYS[2], unpack(expired))
  local ms = redis.call('HMGET', KEYS[4], unpack(expired))
  local back, buried, hs, why = {}, {}, {}, {}
  for i = 1, #expired do
    local id = expired[i]
    local tok, f, c = meta(ms[i])
    c = c + 1
    hs[#hs + 1] = id; hs[#hs + 1] = (tok or '0.0') .. ' ' .. f .. ' ' .. c
    if c >= maxc then
      buried[#buried + 1] = now; buried[#buried + 1] = id
      why[#why + 1] = id
      why[#why + 1] = 'its worker vanished ' .. c .. ' times while running it (max deliveries ' .. maxc .. ')'
    else
      back[#back + 1] = now; back[#back + 1] = id
    end
  end
  widen(KEYS[4])
  redis.call('HSET', KEYS[4], unpack(hs))
  if #back > 0 then redis.call('ZADD', KEYS[1], unpack(back)) end
  if #buried > 0 then
    redis.call('ZADD', KEYS[5], unpack(buried))
    redis.call('HSET', KEYS[6], unpack(why))
  end
end
trim_dead(KEYS[5], KEYS[6], KEYS[3], KEYS[4], now - tonumber(ARGV[4]), limit)
local out = {'', tostring(now)}
if n > 0 then
  local scored = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, n)
  if #scored > 0 then
    local ids, dues = {}, {}
    for i = 1, #scored, 2 do ids[#ids + 1] = scored[i]; dues[#dues + 1] = scored[i + 1] end
    redis.call('ZREM', KEYS[1], unpack(ids))
    local payloads = redis.call('HMGET', KEYS[3], unpack(ids))
    local ms = redis.call('HMGET', KEYS[4], unpack(ids))
    local za, hs, gone = {}, {}, {}
    local deadline = now + lease_ms
    for i = 1, #ids do
      local id = ids[i]
      local p = payloads[i]
      if p then
        local tok, f, c = meta(ms[i])
        local token = (deliveries(tok) + 1) .. '.' .. us
        hs[#hs + 1] = id; hs[#hs + 1] = token .. ' ' .. f .. ' ' .. c
        za[#za + 1] = deadline; za[#za + 1] = id
        out[#out + 1] = id; out[#out + 1] = token; out[#out + 1] = dues[i]
        out[#out + 1] = tostring(f + 1); out[#out + 1] = p
      else
        gone[#gone + 1] = id
      end
    end
    if #hs > 0 then
      widen(KEYS[4])
      redis.call('HSET', KEYS[4], unpack(hs))
      redis.call('ZADD', KEYS[2], unpack(za))
    end
    if #gone > 0 then redis.call('HDEL', KEYS[4], unpack(gone)); narrowed(KEYS[4]) end
  end
end
local nd = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nl = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local next = nil
if #nd > 0 then next = tonumber(nd[2]) end
if #nl > 0 and (next == nil or tonumber(nl[2]) < next) then next = tonumber(nl[2]) end
if next ~= nil then out[1] = string.format('%.0f', next) end
return out
