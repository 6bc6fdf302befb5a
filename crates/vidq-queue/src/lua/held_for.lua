-- How many milliseconds a fair queue's hold still lasts, by Redis's clock (`now`, from the
-- prelude); 0 when the queue is not held. KEYS: hold.
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if hold <= now then return 0 end
return hold - now
