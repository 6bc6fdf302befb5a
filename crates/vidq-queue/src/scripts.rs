//! The Lua scripts. Each touches the keys of one queue only, and every range it reads or
//! `unpack`s is bounded by an argument the Rust side caps at `MAX_BATCH`.

use redis::Script;

// Delivery counters (the `dlv` hash) are fencing tokens and never go back while a task exists:
// a late ack from a lost lease must not match a later delivery. A token is
// `round * 1000000 + attempt`: a reschedule or a retry from the dead set starts the next round,
// so the attempt count (the crash limit, the retry policy) starts from 1 again while the token
// keeps growing. `crate::leases::ROUND` is the same number.

/// Claim: return expired leases to due, trim old dead tasks, move at most N due tasks into
/// the lease set, bump their delivery counts, and report the next wake-up time.
///
/// KEYS: due, lease, data, dlv, dead, why.
/// ARGV: now, max claim, lease deadline, max deliveries, dead cutoff, reclaim limit.
/// Returns `[next, id1, delivery1, due1, payload1, ...]`; `next` is the earliest due time or
/// lease deadline (ms), or '' when both sets are empty; `due` is the time the task was due.
const CLAIM: &str = r"
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local deadline = ARGV[3]
local maxd = tonumber(ARGV[4])
local limit = tonumber(ARGV[6])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
if #expired > 0 then
  local za = {}
  for i = 1, #expired do za[#za + 1] = now; za[#za + 1] = expired[i] end
  redis.call('ZREM', KEYS[2], unpack(expired))
  redis.call('ZADD', KEYS[1], unpack(za))
end
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[5], 'LIMIT', 0, limit)
if #old > 0 then
  redis.call('ZREM', KEYS[5], unpack(old))
  redis.call('HDEL', KEYS[3], unpack(old))
  redis.call('HDEL', KEYS[4], unpack(old))
  redis.call('HDEL', KEYS[6], unpack(old))
end
local out = {''}
if n > 0 then
  local scored = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, n)
  local ids = {}
  local dues = {}
  for i = 1, #scored, 2 do ids[#ids + 1] = scored[i]; dues[#dues + 1] = scored[i + 1] end
  if #ids > 0 then
    redis.call('ZREM', KEYS[1], unpack(ids))
    local payloads = redis.call('HMGET', KEYS[3], unpack(ids))
    local za = {}
    for i = 1, #ids do
      local id = ids[i]
      local p = payloads[i]
      if p then
        local d = redis.call('HINCRBY', KEYS[4], id, 1)
        local attempt = d % 1000000
        if attempt > maxd then
          redis.call('ZADD', KEYS[5], now, id)
          redis.call('HSET', KEYS[6], id, 'delivered ' .. (attempt - 1) .. ' times without finishing (max deliveries ' .. maxd .. ')')
        else
          za[#za + 1] = deadline; za[#za + 1] = id
          out[#out + 1] = id; out[#out + 1] = tostring(d); out[#out + 1] = dues[i]; out[#out + 1] = p
        end
      else
        redis.call('HDEL', KEYS[4], id)
      end
    end
    if #za > 0 then redis.call('ZADD', KEYS[2], unpack(za)) end
  end
end
local nd = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nl = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local next = nil
if #nd > 0 then next = tonumber(nd[2]) end
if #nl > 0 and (next == nil or tonumber(nl[2]) < next) then next = tonumber(nl[2]) end
if next ~= nil then out[1] = string.format('%.0f', next) end
return out
";

/// Settle a batch of successful deliveries: each is either done (removed for good) or
/// rescheduled (the same task, payload kept, back to due at a new time, its attempt count
/// starting again). Applied only where the task is leased and its delivery count still equals
/// the token (a late ack from a worker that lost its lease changes nothing).
///
/// KEYS: lease, data, dlv, due. ARGV: wake channel, then per task: id, token, due time in ms
/// ('' = done). Returns 1/0 per task.
const ACK: &str = r"
local ids = {}
for i = 2, #ARGV, 3 do ids[#ids + 1] = ARGV[i] end
local dl = redis.call('HMGET', KEYS[3], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local done = {}
local moved = {}
local again = {}
local res = {}
for i = 1, #ids do
  local id = ids[i]
  if dl[i] == ARGV[3 * i] and sc[i] then
    res[i] = 1
    local due = ARGV[3 * i + 1]
    if due == '' then
      done[#done + 1] = id
    else
      moved[#moved + 1] = id
      again[#again + 1] = due; again[#again + 1] = id
      local d = tonumber(dl[i])
      redis.call('HINCRBY', KEYS[3], id, 1000000 - d % 1000000)
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
  redis.call('ZADD', KEYS[4], unpack(again))
  redis.call('PUBLISH', ARGV[1], '1')
end
return res
";

/// Finish one delivery that did not succeed: back to due at a time, or to the dead set.
///
/// KEYS: lease, dlv, due, dead, why.
/// ARGV: id, token, mode ('retry' | 'dead'), score (due time or time of death), reason,
/// wake channel (idle workers re-read the next due time). Returns 1 if applied, 0 if the
/// token was stale.
const FINISH: &str = r"
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] or not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == 'dead' then
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('PUBLISH', ARGV[6], '1')
end
return 1
";

/// Hand leases back to due at once (clean stop). With `undo` = 1 the delivery is not
/// counted (the task never started).
///
/// KEYS: lease, dlv, due. ARGV: now, undo, wake channel, id1, token1, ... Returns the count.
const RELEASE: &str = r"
local ids = {}
for i = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
local dl = redis.call('HMGET', KEYS[2], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local n = 0
for i = 1, #ids do
  if dl[i] == ARGV[2 * i + 3] and sc[i] then
    local id = ids[i]
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[3], ARGV[1], id)
    if ARGV[2] == '1' then
      if redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then redis.call('HDEL', KEYS[2], id) end
    end
    n = n + 1
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[3], '1') end
return n
";

/// Renew a batch of leases still held under the given tokens.
///
/// KEYS: lease, dlv. ARGV: deadline, id1, token1, ... Returns the ids whose lease was lost.
const RENEW: &str = r"
local ids = {}
for i = 2, #ARGV, 2 do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return {} end
local dl = redis.call('HMGET', KEYS[2], unpack(ids))
local sc = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local za = {}
local lost = {}
for i = 1, #ids do
  if dl[i] == ARGV[2 * i + 1] and sc[i] then za[#za + 1] = ARGV[1]; za[#za + 1] = ids[i]
  else lost[#lost + 1] = ids[i] end
end
if #za > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(za)) end
return lost
";

/// Page through the dead set, newest first.
///
/// KEYS: dead, why, data. ARGV: offset, limit. Returns `[id, died_ms, reason, payload, ...]`.
const DEAD_PAGE: &str = r"
local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local id = ids[i]
  out[#out + 1] = id
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or ''
end
return out
";

/// Move dead tasks back to due (one id, or the oldest `limit`), their attempts counting from 1
/// again in a new round.
///
/// KEYS: dead, why, dlv, due. ARGV: now, wake channel, limit, [id]. Returns the count.
const DEAD_RETRY: &str = r"
local ids
if ARGV[4] then
  if redis.call('ZSCORE', KEYS[1], ARGV[4]) then ids = {ARGV[4]} else ids = {} end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
end
if #ids == 0 then return 0 end
local za = {}
local dl = redis.call('HMGET', KEYS[3], unpack(ids))
for i = 1, #ids do
  za[#za + 1] = ARGV[1]; za[#za + 1] = ids[i]
  local d = tonumber(dl[i])
  if d then redis.call('HINCRBY', KEYS[3], ids[i], 1000000 - d % 1000000) end
end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('ZADD', KEYS[4], unpack(za))
redis.call('PUBLISH', ARGV[2], '1')
return #ids
";

/// Delete the oldest `limit` dead tasks for good.
///
/// KEYS: dead, why, data, dlv. ARGV: limit. Returns the count.
const DEAD_PURGE: &str = r"
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[3], unpack(ids))
redis.call('HDEL', KEYS[4], unpack(ids))
return #ids
";

/// The loaded scripts (their SHA1s are computed once).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) claim: Script,
    pub(crate) ack: Script,
    pub(crate) finish: Script,
    pub(crate) release: Script,
    pub(crate) renew: Script,
    pub(crate) dead_page: Script,
    pub(crate) dead_retry: Script,
    pub(crate) dead_purge: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            claim: Script::new(CLAIM),
            ack: Script::new(ACK),
            finish: Script::new(FINISH),
            release: Script::new(RELEASE),
            renew: Script::new(RENEW),
            dead_page: Script::new(DEAD_PAGE),
            dead_retry: Script::new(DEAD_RETRY),
            dead_purge: Script::new(DEAD_PURGE),
        }
    }
}
