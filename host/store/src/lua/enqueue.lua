-- Creates a job: its hash, its place in the ready queue (or the delayed set), its
-- idempotency key, and its entry in the job index. Returns {id, 1, 0} when created,
-- {existing id, 0, 0} for a known idempotency key, and {'', -1, waiting} when the job
-- type's queue is full (nothing is written then).
-- KEYS: 1 job hash, 2 ready queue, 3 delayed set, 4 idempotency key, 5 sequence, 6 job index,
--       7 the type's scheduled set
-- ARGV: 1 id, 2 run_at_ms (0 = now), 3 priority (0-255), 4 idempotency ttl ms,
--       5 event channel, 6 job type, 7 max waiting jobs of the type (0 = no limit),
--       8 key prefix, 9.. field/value pairs of the job hash
local existing = KEYS[4] ~= KEYS[1] and redis.call('GET', KEYS[4])
if existing then
  return {existing, 0, 0}
end
local limit = tonumber(ARGV[7])
if limit > 0 then
  -- Waiting = QUEUED (the ready queue) + SCHEDULED (the type's scheduled set).
  local waiting = redis.call('ZCARD', KEYS[2]) + redis.call('SCARD', KEYS[7])
  if waiting >= limit then
    -- Self-repair: a scheduled entry whose job is gone or moved on (a record deleted by
    -- hand, say) must not hold a place for ever. A few random ones are checked per refusal.
    for _, id in ipairs(redis.call('SRANDMEMBER', KEYS[7], 3)) do
      if redis.call('HGET', ARGV[8] .. 'job:' .. id, 'state') ~= 'SCHEDULED' then
        redis.call('SREM', KEYS[7], id)
        waiting = waiting - 1
      end
    end
    if waiting >= limit then
      return {'', -1, waiting}
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local run_at = tonumber(ARGV[2])
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'id', id, 'created_ms', now, 'updated_ms', now, unpack(fields))
redis.call('ZADD', KEYS[6], 0, id) -- ids are time-ordered: the index is ordered by id
if run_at > now then
  redis.call('HSET', KEYS[1], 'state', 'SCHEDULED', 'run_at_ms', run_at)
  redis.call('ZADD', KEYS[3], run_at, id)
  redis.call('SADD', KEYS[7], id)
else
  local seq = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[1], 'state', 'QUEUED')
  redis.call('ZADD', KEYS[2], (255 - tonumber(ARGV[3])) * 4398046511104 + seq, id)
  redis.call('PUBLISH', ARGV[5], 'ready ' .. ARGV[6])
end
if KEYS[4] ~= KEYS[1] then
  redis.call('SET', KEYS[4], id, 'PX', ARGV[4])
  redis.call('HSET', KEYS[1], 'idempotency_key_ref', KEYS[4])
end
return {id, 1, 0}
