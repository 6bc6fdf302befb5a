-- Creates one job: its hash and its history list. Refuses an existing id.
-- KEYS[1] job hash, KEYS[2] job history list (same hash tag)
-- ARGV[1] "1" when the record is already terminal, ARGV[2] finished TTL in ms,
-- ARGV[3] events channel, ARGV[4] event JSON, ARGV[5] number of field/value pairs N,
-- ARGV[6 .. 5+2N] field/value pairs, then the history entries (oldest first).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local n = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], unpack(ARGV, 6, 5 + 2 * n))
redis.call('DEL', KEYS[2])
if #ARGV > 5 + 2 * n then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 6 + 2 * n, #ARGV))
end
if ARGV[1] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 1
