-- Creates a Job Distributor record under a unique index entry, atomically.
-- KEYS[1] index hash (unique field -> id), KEYS[2] records hash (id -> JSON)
-- ARGV[1] unique field, ARGV[2] id, ARGV[3] JSON
-- Returns {1, id} when created, {0, existing id} when the field was taken.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return {0, redis.call('HGET', KEYS[1], ARGV[1])}
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return {1, ARGV[2]}
