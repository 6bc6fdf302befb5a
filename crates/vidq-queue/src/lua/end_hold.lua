-- End a fair queue's hold now (the busy resource freed up) and wake idle workers.
-- KEYS: hold. ARGV: wake channel. Returns 1 if the queue was held.
local held = redis.call('DEL', KEYS[1])
if held == 1 then redis.call('SPUBLISH', ARGV[1], '1') end
return held
