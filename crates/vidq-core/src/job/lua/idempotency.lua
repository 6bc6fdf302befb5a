-- Claims an idempotency key, or returns what it already holds.
-- KEYS[1] the key   ARGV[1] value to store   ARGV[2] TTL in ms
-- Returns the stored value when the key was taken, nil when this call claimed it.
local held = redis.call('GET', KEYS[1])
if held then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
