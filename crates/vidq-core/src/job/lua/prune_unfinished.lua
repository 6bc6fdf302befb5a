-- Repairs one set of unfinished job ids (`{jobs}:unfinished` or `{jobs}:tenant:<owner>:unfinished`):
-- drops sampled ids whose job is gone (deleted by hand, or Redis lost it) or has ended, so a
-- quota never stays held by a job that cannot end. Checked and dropped in one atomic step, so
-- a job reopened meanwhile is never dropped.
-- KEYS[1] the set   ARGV[1] `<prefix>:{jobs}:job:` (a job's hash is this plus `<id>`)
-- ARGV[2] how many ids to sample
-- Returns how many were dropped.
local ids = redis.call('SRANDMEMBER', KEYS[1], tonumber(ARGV[2]))
local dropped = 0
for _, id in ipairs(ids) do
  local state = redis.call('HGET', ARGV[1] .. id, 'state')
  if (not state) or state == 'succeeded' or state == 'failed' or state == 'canceled'
      or state == 'expired' then
    redis.call('SREM', KEYS[1], id)
    dropped = dropped + 1
  end
end
return dropped
