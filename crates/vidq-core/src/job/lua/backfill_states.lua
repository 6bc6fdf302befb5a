-- One step of the one-time backfill of the per-state indexes (`{jobs}:state:<state>`,
-- `{jobs}:tenant:<owner>:state:<state>`) for jobs created before they existed: the next
-- `limit` entries of `{jobs}:all`, oldest first, each put in its state's index as its record
-- says now. Read and written in one atomic step per job, so a job that moves meanwhile is
-- never left in an old state's index (its transition already put it in the new one's).
-- Idempotent (ZADD NX); a job created since is in its index already.
-- KEYS[1] all   KEYS[2] the backfill's progress (hash: at = score reached, skip = entries at
--         that score done, done = 1 once finished)
-- ARGV[1] `<prefix>:{jobs}:job:`   ARGV[2] `<prefix>:{jobs}:state:`
-- ARGV[3] `<prefix>:{jobs}:tenant:`   ARGV[4] most entries this step
-- Returns {1 when finished else 0, jobs indexed this step}.
if redis.call('HGET', KEYS[2], 'done') == '1' then
  return {1, 0}
end
local at = redis.call('HGET', KEYS[2], 'at') or '-inf'
local skip = tonumber(redis.call('HGET', KEYS[2], 'skip') or '0')
local entries = redis.call('ZRANGEBYSCORE', KEYS[1], at, '+inf', 'WITHSCORES', 'LIMIT', skip,
  tonumber(ARGV[4]))
if #entries == 0 then
  redis.call('HSET', KEYS[2], 'done', '1')
  return {1, 0}
end
local indexed = 0
local last, run = nil, 0
for i = 1, #entries, 2 do
  local id, score = entries[i], entries[i + 1]
  local job = redis.call('HMGET', ARGV[1] .. id, 'state', 'owner', 'created_at')
  if job[1] then
    local created_at = job[3] or score
    redis.call('ZADD', ARGV[2] .. job[1], 'NX', created_at, id)
    if job[2] then
      redis.call('ZADD', ARGV[3] .. job[2] .. ':state:' .. job[1], 'NX', created_at, id)
    end
    indexed = indexed + 1
  end
  if score == last then
    run = run + 1
  else
    last, run = score, 1
  end
end
if at ~= '-inf' and tonumber(last) == tonumber(at) then
  redis.call('HSET', KEYS[2], 'skip', skip + run)
else
  redis.call('HSET', KEYS[2], 'at', last, 'skip', run)
end
return {0, indexed}
