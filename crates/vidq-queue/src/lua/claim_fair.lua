-- Claim from a fair queue: like claim.lua (expired leases back, old dead tasks trimmed, at most
-- N tasks leased with fresh tokens, the next wake-up time reported), but the tasks due now are
-- first moved (at most `promote` per call) from `due` into their group's ready set, ranked by
-- priority then push order, and each task taken comes from the group whose virtual time is
-- lowest (start-time fair queuing: a group's time advances by 1/weight per task it is given; a
-- group that gets work again starts at the queue's current virtual time, so idle groups bank no
-- credit). A task that comes back (lease expired, handed back, held, retried) keeps the
-- virtual time it was claimed at, so it loses neither its group's turn nor its place in it.
-- While the queue is held (`hold`, set by a task that found the queue's shared resource busy)
-- nothing is taken.
-- KEYS: due, lease, data, dlv, dead, why, ready, gm, groups, vt, hold.
-- ARGV: max claim, lease ms, max crashes, dead ttl ms, reclaim/trim limit, group key prefix,
-- promote limit, then pairs of (escaped group name, weight).
-- gm: id -> "<band> <seq> <group>[ <start tag>]"; vt: group -> finish tag of an idle group,
-- and '%V' -> the queue's virtual time.
-- Returns like claim.lua.
-- A paused queue (its `paused` key, beside `due` in the queue's slot) is not claimed: nothing
-- leased, no next time (workers wait their idle poll or the wake-up resume publishes).
if redis.call('EXISTS', string.sub(KEYS[1], 1, -4) .. 'paused') == 1 then
  return {'', tostring(now)}
end
local n = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local maxc = tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
local gprefix = ARGV[6]
local plimit = tonumber(ARGV[7])
local weights = {}
for i = 8, #ARGV, 2 do weights[ARGV[i]] = tonumber(ARGV[i + 1]) end
local BAND = 2251799813685248 -- 2^51: rank = band * 2^51 + seq stays an exact double
local UNIT = 720720 -- a task costs UNIT / weight (whole numbers: tags stay exact)
local function int(x) return string.format('%.0f', x) end

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
trim_dead(KEYS[5], KEYS[6], KEYS[3], KEYS[4], now - tonumber(ARGV[4]), limit, KEYS[8])

-- The queue's virtual time, and each group's score as this call changes it.
local V = tonumber(redis.call('HGET', KEYS[10], '%V') or '0')
local score = {}
local function current(g)
  if score[g] == nil then
    local s = redis.call('ZSCORE', KEYS[9], g)
    score[g] = s and tonumber(s) or false
  end
  return score[g]
end
local function parse(m, id, due)
  local band, seq, g, tag
  if m then band, seq, g, tag = string.match(m, '^(%d) (%d+) (%S+) ?(%S*)$') end
  if not band then return 1, math.floor(due) * 1000, '%', nil end -- pushed without a group
  return tonumber(band), tonumber(seq), g, tonumber(tag)
end

-- Due tasks into their groups.
local ripe = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, plimit)
if #ripe > 0 then
  local ids, dues = {}, {}
  for i = 1, #ripe, 2 do ids[#ids + 1] = ripe[i]; dues[#dues + 1] = tonumber(ripe[i + 1]) end
  redis.call('ZREM', KEYS[1], unpack(ids))
  local metas = redis.call('HMGET', KEYS[8], unpack(ids))
  local ready = {}
  for i = 1, #ids do
    local band, seq, g, tag = parse(metas[i], ids[i], dues[i])
    ready[#ready + 1] = int(dues[i]); ready[#ready + 1] = ids[i]
    redis.call('ZADD', gprefix .. g, int(band * BAND + seq), ids[i])
    local cur = current(g)
    local s = cur
    if not cur then
      s = math.max(V, tonumber(redis.call('HGET', KEYS[10], g) or '0'))
      redis.call('HDEL', KEYS[10], g)
    end
    if tag and tag < s then s = tag end
    if s ~= cur then
      score[g] = s
      redis.call('ZADD', KEYS[9], int(s), g)
    end
  end
  redis.call('ZADD', KEYS[7], unpack(ready))
end

local hold = tonumber(redis.call('GET', KEYS[11]) or '0')
if hold <= now then hold = nil end
local out = {'', tostring(now)}
if n > 0 and not hold then
  local deadline = now + lease_ms
  local za, hs, gms = {}, {}, {}
  for _ = 1, n do
    local head = redis.call('ZRANGE', KEYS[9], 0, 0, 'WITHSCORES')
    if #head == 0 then break end
    local g, s = head[1], tonumber(head[2])
    local gkey = gprefix .. g
    local top = redis.call('ZPOPMIN', gkey)
    if #top > 0 then
      local id = top[1]
      local rest = redis.call('ZCARD', gkey)
      local f = s + math.max(1, math.floor(UNIT / (weights[g] or 1)))
      if rest > 0 then
        redis.call('ZADD', KEYS[9], int(f), g)
      else
        redis.call('ZREM', KEYS[9], g)
        redis.call('HSET', KEYS[10], g, int(f))
      end
      if s > V then V = s end
      local due = redis.call('ZSCORE', KEYS[7], id) or tostring(now)
      redis.call('ZREM', KEYS[7], id)
      local p = redis.call('HGET', KEYS[3], id)
      local m = redis.call('HGET', KEYS[8], id)
      if p then
        local tok, fl, c = meta(redis.call('HGET', KEYS[4], id))
        local token = (deliveries(tok) + 1) .. '.' .. us
        hs[#hs + 1] = id; hs[#hs + 1] = token .. ' ' .. fl .. ' ' .. c
        za[#za + 1] = deadline; za[#za + 1] = id
        local band, seq, mg = parse(m, id, tonumber(due))
        gms[#gms + 1] = id; gms[#gms + 1] = band .. ' ' .. string.format('%.0f', seq) .. ' ' .. mg .. ' ' .. int(s)
        out[#out + 1] = id; out[#out + 1] = token; out[#out + 1] = string.format('%.0f', tonumber(due))
        out[#out + 1] = tostring(fl + 1); out[#out + 1] = p
      else
        redis.call('HDEL', KEYS[4], id)
        redis.call('HDEL', KEYS[8], id)
        narrowed(KEYS[4]); narrowed(KEYS[8])
      end
    else
      redis.call('ZREM', KEYS[9], g) -- an empty group left behind (never written so)
    end
  end
  if #hs > 0 then
    widen(KEYS[4]); widen(KEYS[8])
    redis.call('HSET', KEYS[4], unpack(hs))
    redis.call('HSET', KEYS[8], unpack(gms))
    redis.call('ZADD', KEYS[2], unpack(za))
  end
  redis.call('HSET', KEYS[10], '%V', int(V))
end

local next = nil
if redis.call('ZCARD', KEYS[7]) > 0 then next = now end
local nd = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nd > 0 and (next == nil or tonumber(nd[2]) < next) then next = tonumber(nd[2]) end
if next ~= nil and hold and next < hold then next = hold end
local nl = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nl > 0 and (next == nil or tonumber(nl[2]) < next) then next = tonumber(nl[2]) end
if next ~= nil then
  out[1] = int(next)
else
  redis.call('DEL', KEYS[10], KEYS[11]) -- nothing waiting or leased: no key left
end
return out
