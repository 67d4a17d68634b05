-- Creates a job: its hash, its place in the ready queue (or the delayed set), its
-- idempotency key, and its entry in the job index. Returns {id, created(0/1)}.
-- KEYS: 1 job hash, 2 ready queue, 3 delayed set, 4 idempotency key, 5 sequence, 6 job index
-- ARGV: 1 id, 2 run_at_ms (0 = now), 3 priority (0-255), 4 idempotency ttl ms,
--       5 event channel, 6 job type, 7.. field/value pairs of the job hash
local existing = KEYS[4] ~= KEYS[1] and redis.call('GET', KEYS[4])
if existing then
  return {existing, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[1]
local run_at = tonumber(ARGV[2])
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'id', id, 'created_ms', now, 'updated_ms', now, unpack(fields))
redis.call('ZADD', KEYS[6], 0, id) -- ids are time-ordered: the index is ordered by id
if run_at > now then
  redis.call('HSET', KEYS[1], 'state', 'SCHEDULED', 'run_at_ms', run_at)
  redis.call('ZADD', KEYS[3], run_at, id)
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
return {id, 1}
