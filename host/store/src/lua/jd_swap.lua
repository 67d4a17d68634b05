-- Replaces a Job Distributor record only if it is unchanged since it was read.
-- KEYS[1] records hash; ARGV[1] id, ARGV[2] JSON as read, ARGV[3] new JSON
-- Returns 1 when replaced, 0 when it changed meanwhile (or is gone).
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
