-- Moves a cron schedule to its next fire time, only if the caller still leads (fencing
-- token) and the fire it handled is still the current one.
-- KEYS: 1 leader key, 2 next-fire set   ARGV: 1 "<node> <token>", 2 name, 3 due ms, 4 next ms
-- Returns 1 if advanced, 0 if not.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local due = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not due or tonumber(due) ~= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return 1
