-- Take a job's submission claim for one delivery: the only way to a paid upstream call.
-- A claim held by another delivery is honoured until `hold` has passed since it was taken
-- (its upstream call is bounded by a timeout shorter than that), so two calls for one job can
-- never be in flight at once. Time is Redis's.
-- KEYS[1] job hash. ARGV[1] the delivery's token, ARGV[2] hold (ms).
-- Returns {'taken', ''}, {'taken_over', previous token}, {'busy', ms left},
-- {'expired', ''} (unsubmitted past its deadline), {'moved', state} or {'gone', ''}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'state', 'img_uuid', 'submit_claim', 'submit_claim_at', 'deadline_at')
local state, uuid, claim = f[1], f[2], f[3]
if not state then return {'gone', ''} end
if state ~= 'submitting' or uuid then return {'moved', state} end
local deadline = tonumber(f[5] or '0') or 0
if deadline > 0 and now > deadline then return {'expired', ''} end
local hold = tonumber(ARGV[2])
if claim and claim ~= ARGV[1] then
  local age = now - (tonumber(f[4] or '0') or 0)
  if age < hold then return {'busy', string.format('%.0f', hold - age)} end
end
redis.call('HSET', KEYS[1], 'submit_claim', ARGV[1], 'submit_claim_at', string.format('%.0f', now))
if claim and claim ~= ARGV[1] then return {'taken_over', claim} end
return {'taken', ''}
