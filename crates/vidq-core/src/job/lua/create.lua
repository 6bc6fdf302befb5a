-- Creates jobs of one owner (or of none) in one atomic step: for each job its hash, its
-- history list, its index entries and its counts, after checking the owner's quotas and the
-- backlog cap. A job refused by a limit, or whose id exists, is not written at all; the
-- others are checked in order, so a batch takes what fits.
-- Every key is `<prefix>:{jobs}:…` (one slot):
-- KEYS[1] all   KEYS[2] active   KEYS[3] unfinished (set)   KEYS[4] tenants
-- KEYS[5] tenant:<owner>   KEYS[6] tenant:<owner>:unfinished (set)
-- KEYS[7] tenant:<owner>:today (hash: day = UTC day number by Redis's clock, created =
--         jobs created that day; reset when the day changes)   KEYS[8] states (hash)
-- then per job i (from 1): KEYS[7 + 2i] its hash, KEYS[8 + 2i] its history list.
-- ARGV[1] the owner, or ""   ARGV[2] finished TTL in ms   ARGV[3] events channel
-- ARGV[4] most unfinished jobs of the owner, ARGV[5] most jobs the owner creates per UTC day,
-- ARGV[6] most unfinished jobs in all (0: no limit)   ARGV[7] number of jobs M
-- ARGV[8] this call's nonce, kept in each job's hash (`create_nonce`): a job found existing
--         with the same nonce was created by this very call, run again (a client library
--         resending it after a lost reply or a failover), and counts as created once
-- ARGV[9] `<prefix>:{jobs}:state:`: each job goes in the zset of its state, this plus the
--         state (score created_at), and with an owner in `tenant:<owner>:state:<state>` too
--         (KEYS[5] plus `:state:` plus the state)
-- then per job: "1" when terminal, created_at, id, event JSON, field/value pair count N,
-- the N pairs, history entry count H, the H entries (oldest first).
-- Returns {now ms, seconds to the next UTC midnight, code per job}: 1 created, 0 the id
-- exists, -1 over the owner's unfinished quota, -2 over its daily quota, -3 over the
-- backlog cap.
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000 + math.floor(tonumber(t[2]) / 1000)
local day = math.floor(secs / 86400)
local to_midnight = (day + 1) * 86400 - secs
local owner = ARGV[1]
local max_open, max_day, max_backlog = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local open = 0
local today = 0
if owner ~= '' then
  open = redis.call('SCARD', KEYS[6])
  if redis.call('HGET', KEYS[7], 'day') == tostring(day) then
    today = tonumber(redis.call('HGET', KEYS[7], 'created') or '0')
  end
end
local backlog = redis.call('SCARD', KEYS[3])

local nonce = ARGV[8]
local codes = {}
local state_prefix = ARGV[9]
local a = 10
for i = 1, tonumber(ARGV[7]) do
  local terminal = ARGV[a] == '1'
  local created_at, id, event = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local n = tonumber(ARGV[a + 4])
  local fields_at = a + 5
  local h = tonumber(ARGV[fields_at + 2 * n])
  local history_at = fields_at + 2 * n + 1
  a = history_at + h
  local job, history = KEYS[7 + 2 * i], KEYS[8 + 2 * i]
  local code = 1
  local replay = false
  if redis.call('EXISTS', job) == 1 then
    if redis.call('HGET', job, 'create_nonce') == nonce then
      replay = true
    else
      code = 0
    end
  elseif owner ~= '' and not terminal and max_open > 0 and open >= max_open then
    code = -1
  elseif owner ~= '' and max_day > 0 and today >= max_day then
    code = -2
  elseif not terminal and max_backlog > 0 and backlog >= max_backlog then
    code = -3
  end
  if code == 1 and not replay then
    redis.call('HSET', job, unpack(ARGV, fields_at, fields_at + 2 * n - 1))
    redis.call('HSET', job, 'create_nonce', nonce)
    redis.call('DEL', history)
    if h > 0 then
      redis.call('RPUSH', history, unpack(ARGV, history_at, history_at + h - 1))
    end
    redis.call('ZADD', KEYS[1], 'NX', created_at, id)
    if owner ~= '' then
      redis.call('ZADD', KEYS[5], 'NX', created_at, id)
      redis.call('SADD', KEYS[4], owner)
      today = today + 1
      redis.call('HSET', KEYS[7], 'day', day, 'created', today)
    end
    if terminal then
      redis.call('PEXPIRE', job, ARGV[2])
      redis.call('PEXPIRE', history, ARGV[2])
      redis.call('SPUBLISH', ARGV[3], event)
    else
      redis.call('ZADD', KEYS[2], 'NX', now, id)
      redis.call('SADD', KEYS[3], id)
      backlog = backlog + 1
      if owner ~= '' then
        redis.call('SADD', KEYS[6], id)
        open = open + 1
      end
    end
    local state = redis.call('HGET', job, 'state')
    redis.call('HINCRBY', KEYS[8], state, 1)
    redis.call('ZADD', state_prefix .. state, 'NX', created_at, id)
    if owner ~= '' then
      redis.call('ZADD', KEYS[5] .. ':state:' .. state, 'NX', created_at, id)
    end
  end
  codes[i] = code
end
local reply = {now, to_midnight}
for i = 1, #codes do
  reply[i + 2] = codes[i]
end
return reply
