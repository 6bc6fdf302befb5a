-- Shared by every script (prepended once when the scripts are built).
-- Time is Redis's: `now` in ms and `us` (a 16-digit microsecond stamp) from TIME.
-- A task's meta in the `dlv` hash is "<token> <fails> <crashes>": `token` is
-- "<deliveries>.<us of its claim>" (never repeats: the count only grows, and after Redis
-- lost writes the clock has moved on), `fails` the handled failures of the current round,
-- `crashes` the deliveries of this round whose worker vanished without settling them.
-- A fourth field, the nonce of the call that settled the task (rescheduled, retried, buried)
-- under that token: that very call run again (a client library resending it after a lost
-- reply) answers applied; any other call is still fenced. Every other write drops it.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local us = t[1] .. string.format('%06d', tonumber(t[2]))
-- The per-task hashes (data, dlv, gm) are kept in Redis's hashtable encoding. A small hash
-- is a listpack, searched field by field on every access: a queue with a few hundred tasks in
-- flight spent 40-60% more Redis CPU per task in one (the bimodal drain rate of
-- examples/throughput: a run whose dlv never passed hash-max-listpack-entries, 512 here,
-- stayed a listpack from start to end, the others turned into a hashtable and stayed one).
-- A value longer than hash-max-listpack-value (64 by default) converts a hash for good: the
-- empty field (no task id is empty) holds such a value while the hash holds tasks, and goes
-- with the last of them, so an emptied queue still leaves no key.
local WIDE = string.rep('-', 256)
local function widen(h) redis.call('HSETNX', h, '', WIDE) end
local function narrowed(h)
  if redis.call('HLEN', h) == 1 and redis.call('HEXISTS', h, '') == 1 then redis.call('DEL', h) end
end
local function meta(m)
  if not m then return nil, 0, 0 end
  local tok, f, c, s = string.match(m, '^(%S+) (%d+) (%d+) ?(%w*)$')
  if not tok then return m, 0, 0, '' end -- written by an older release: a bare delivery count
  return tok, tonumber(f), tonumber(c), s
end
local function deliveries(tok)
  if not tok then return 0 end
  return tonumber(string.match(tok, '^(%d+)')) or 0
end
local function trim_dead(dead, why, data, dlv, cutoff, limit, gm)
  local old = redis.call('ZRANGEBYSCORE', dead, '-inf', cutoff, 'LIMIT', 0, limit)
  if #old > 0 then
    redis.call('ZREM', dead, unpack(old))
    redis.call('HDEL', why, unpack(old))
    redis.call('HDEL', data, unpack(old))
    redis.call('HDEL', dlv, unpack(old))
    narrowed(data); narrowed(dlv)
    if gm then redis.call('HDEL', gm, unpack(old)); narrowed(gm) end
  end
end
