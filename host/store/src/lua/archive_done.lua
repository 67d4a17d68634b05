-- Releases jobs a node has written to PostgreSQL: each leaves the history outbox, and its
-- Redis retention starts now, as finish.lua would have started it without history. A job
-- that is not the one that was read (another finish time; a record without one counts as
-- 0, as the reader gives it) stays for the next drain; one that no longer exists just
-- leaves the outbox.
-- KEYS: 1 history outbox, 2 succeeded index, 3 job index
-- ARGV: 1 prefix, 2 retention ms (failed, cancelled, dead), 3 retention ms of succeeded
--       jobs, 4 most succeeded jobs kept, then per job: id, finish time ms as archived
-- Returns the number of jobs released.
local now = clock_ms()
local now_s = int(now)
local prefix, ttl, ok_ttl, ok_max = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local released, succeeded, done = 0, 0, {}
for i = 5, #ARGV, 2 do
  local id, finished = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', prefix .. 'job:' .. id, 'state', 'finished_ms', 'keep')
  if not f[1] then
    released = released + redis.call('ZREM', KEYS[1], id)
  elseif (f[2] or '0') == finished and f[1] ~= 'QUEUED' and f[1] ~= 'SCHEDULED' and f[1] ~= 'RUNNING' then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      released = released + 1
      if f[1] == 'SUCCEEDED' and f[3] ~= '1' then
        succeeded = succeeded + 1
        -- By release time: the retention counts from now, as documented.
        done[#done + 1], done[#done + 2] = now_s, id
        retain(prefix, id, true, ttl, ok_ttl, true)
      else
        retain(prefix, id, false, ttl)
      end
    end
  end
end
if #done > 0 then call_many('ZADD', KEYS[2], done) end
trim_succeeded(prefix, KEYS[2], KEYS[3], now, tonumber(ok_ttl), ok_max, succeeded)
return released
