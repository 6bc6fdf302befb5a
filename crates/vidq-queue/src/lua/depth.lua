-- Sizes of due-now, scheduled-later, leased and dead, by Redis time; trims dead tasks older
-- than the retention on the way (so a queue no worker claims is trimmed too).
-- On a fair queue, tasks due now also wait in its groups (KEYS ready, gm), and while the queue
-- is held (KEYS hold) none can be claimed: they count as scheduled.
-- A paused queue (its `paused` key, beside `due` in the queue's slot, as claim.lua reads it)
-- counts as before; the fifth figure says it is paused (1) or not (0).
-- KEYS: due, lease, dead, why, data, dlv, [ready, gm, hold]. ARGV: dead ttl ms, trim limit.
trim_dead(KEYS[3], KEYS[4], KEYS[5], KEYS[6], now - tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[8])
local ready = 0
if KEYS[7] then ready = redis.call('ZCARD', KEYS[7]) end
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now) + ready
local later = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
if KEYS[9] and tonumber(redis.call('GET', KEYS[9]) or '0') > now then
  later = later + due
  due = 0
end
return {
  due,
  later,
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('EXISTS', string.sub(KEYS[1], 1, -4) .. 'paused'),
}
