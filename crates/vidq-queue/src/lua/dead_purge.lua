-- Delete the oldest `limit` dead tasks for good.
-- KEYS: dead, why, data, dlv, [gm]. ARGV: limit. Returns the count.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[3], unpack(ids))
redis.call('HDEL', KEYS[4], unpack(ids))
narrowed(KEYS[3]); narrowed(KEYS[4])
if KEYS[5] then redis.call('HDEL', KEYS[5], unpack(ids)); narrowed(KEYS[5]) end
return #ids
