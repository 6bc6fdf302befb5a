-- Compare-and-set on one job: applies a patch and, unless ARGV[2] is empty, moves the job to
-- a new state. Nothing is written unless the job is in one of the expected states.
-- KEYS[1] job hash, KEYS[2] job history list, KEYS[3] unfinished (set): all `<prefix>:{jobs}:…`
-- ARGV[1] expected states, space separated   ARGV[2] new state, or "" for a patch only
-- ARGV[3] now (unix ms), or "" for Redis's clock   ARGV[4] history note as JSON (a string or null)
-- ARGV[5] attempts increment                 ARGV[6] "1" when the new state is terminal
-- ARGV[7] finished TTL in ms                 ARGV[8] history cap
-- ARGV[9] events channel                     ARGV[10] event JSON, its "at_ms":0 set to now
-- ARGV[11] `<prefix>:{jobs}:tenant:`: the owner's set of unfinished jobs is this plus the
--          job's owner plus `:unfinished` (the owner is read here, in the same atomic step)
-- ARGV[12] number of field/value pairs N, ARGV[13 .. 12+2N] pairs, then fields to delete.
-- KEYS[4] (optional) `<prefix>:{jobs}:stats:minute:`: a move to a terminal state counts in the
--          hash of this plus the Unix minute (Redis's clock), field = the state, kept 2 hours
-- KEYS[5] (optional) `<prefix>:{jobs}:img:`: a patch storing `img_uuid` sets this plus the
--          uuid to the job's id (its TTL follows the job's)
-- KEYS[6] (optional) `<prefix>:{jobs}:state:`: a move takes the job out of the zset of its old
--          state (this plus the state) and puts it in the new one's (score = its created_at),
--          and likewise of `tenant:<owner>:state:<state>` (ARGV[11] plus the owner plus
--          `:state:` plus the state)
-- A move to a terminal state takes the job out of the unfinished sets (the quotas and the
-- backlog cap count them); a move to an unfinished state puts it (back) in.
-- Returns {1, previous state, now} when applied, {0, current state, ''} when skipped,
-- {-1, '', ''} when the job does not exist.
local current = redis.call('HGET', KEYS[1], 'state')
if not current then
  return {-1, '', ''}
end
local now = ARGV[3]
if now == '' then
  local t = redis.call('TIME')
  now = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
-- A pair `tx`/<this call's nonce> among the patch's: the hash keeps `tx` = "<nonce> <state it
-- left>", so this very call run again (a client library resending it after a lost reply or a
-- failover) answers applied, as the first run did, and changes nothing; another call is fenced.
local tx = false
for i = 13, 12 + 2 * tonumber(ARGV[12]), 2 do
  if ARGV[i] == 'tx' then
    tx = ARGV[i + 1]
    local last = redis.call('HGET', KEYS[1], 'tx')
    if last and string.sub(last, 1, #tx + 1) == tx .. ' ' then
      return {1, string.sub(last, #tx + 2), redis.call('HGET', KEYS[1], 'updated_at') or ''}
    end
  end
end
local expected = false
for state in string.gmatch(ARGV[1], '%S+') do
  if state == current then
    expected = true
    break
  end
end
if not expected then
  return {0, current, ''}
end

local n = tonumber(ARGV[12])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 13, 12 + 2 * n))
end
if KEYS[5] then
  for i = 13, 12 + 2 * n, 2 do
    if ARGV[i] == 'img_uuid' and ARGV[i + 1] ~= '' then
      local job_id = redis.call('HGET', KEYS[1], 'id')
      if job_id then
        redis.call('SET', KEYS[5] .. ARGV[i + 1], job_id)
      end
    end
  end
end
if #ARGV > 12 + 2 * n then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 13 + 2 * n, #ARGV))
end
local increment = tonumber(ARGV[5])
if increment > 0 then
  redis.call('HINCRBY', KEYS[1], 'attempts', increment)
end
redis.call('HSET', KEYS[1], 'updated_at', now)
if tx then
  redis.call('HSET', KEYS[1], 'tx', tx .. ' ' .. current)
end

local to = ARGV[2]
if to ~= '' then
  redis.call('HSET', KEYS[1], 'state', to)
  local entry = '{"from":"' .. current .. '","to":"' .. to .. '","at_ms":' .. now
    .. ',"note":' .. ARGV[4] .. '}'
  redis.call('RPUSH', KEYS[2], entry)
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
  local who = redis.call('HMGET', KEYS[1], 'id', 'owner')
  -- Every transition, for followers (the API's event streams): `<events channel>:transitions`.
  if who[1] then
    redis.call('SPUBLISH', ARGV[9] .. ':transitions', '{"id":"' .. who[1] .. '",' .. string.sub(entry, 2))
  end
  local open_key = who[2] and (ARGV[11] .. who[2] .. ':unfinished')
  if KEYS[6] and who[1] then
    local created_at = redis.call('HGET', KEYS[1], 'created_at') or '0'
    redis.call('ZREM', KEYS[6] .. current, who[1])
    redis.call('ZADD', KEYS[6] .. to, created_at, who[1])
    if who[2] then
      local tenant_states = ARGV[11] .. who[2] .. ':state:'
      redis.call('ZREM', tenant_states .. current, who[1])
      redis.call('ZADD', tenant_states .. to, created_at, who[1])
    end
  end
  if ARGV[6] == '1' then
    redis.call('PEXPIRE', KEYS[1], ARGV[7])
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
    local event = string.gsub(ARGV[10], '"at_ms":0', '"at_ms":' .. now, 1)
    redis.call('SPUBLISH', ARGV[9], event)
    if KEYS[4] then
      local stats = KEYS[4] .. math.floor(tonumber(now) / 60000)
      redis.call('HINCRBY', stats, to, 1)
      redis.call('PEXPIRE', stats, 7200000)
    end
    local img = KEYS[5] and redis.call('HGET', KEYS[1], 'img_uuid')
    if img then
      redis.call('PEXPIRE', KEYS[5] .. img, ARGV[7])
    end
    if who[1] then
      redis.call('SREM', KEYS[3], who[1])
      if open_key then
        redis.call('SREM', open_key, who[1])
      end
    end
  else
    -- Unfinished again (an operator's retry of a failed job): the keys live on.
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
    local img = KEYS[5] and redis.call('HGET', KEYS[1], 'img_uuid')
    if img then
      redis.call('PERSIST', KEYS[5] .. img)
    end
    if who[1] then
      redis.call('SADD', KEYS[3], who[1])
      if open_key then
        redis.call('SADD', open_key, who[1])
      end
    end
  end
end
return {1, current, now}
