-- Records the end of an attempt and moves the job to its next state. Only the node that
-- holds the attempt may finish it (a stale node whose lease expired gets 'stale').
-- KEYS: 1 job hash, 2 running set, 3 delayed set, 4 dead set, 5 attempts list, 6 log stream,
--       7 ready queue, 8 sequence, 9 the type's running set, 10 limited hash,
--       11 the type's scheduled set
-- ARGV: 1 id, 2 node, 3 attempt, 4 kind (succeeded|failed|retry|cancelled|requeue),
--       5 output or reason, 6 retry delay ms, 7 retention ms, 8 event channel,
--       9 attempt outcome label
-- Returns the new state, or 'stale'.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, node, attempt, kind = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', KEYS[1], 'state', 'node', 'attempts', 'max_attempts',
  'started_ms', 'cancel', 'type', 'priority', 'cancel_reason')
if f[1] ~= 'RUNNING' or f[2] ~= node or f[3] ~= attempt then
  return 'stale'
end
redis.call('ZREM', KEYS[2], id)
-- The attempt's place under its type's concurrency limit is free again; if the type was
-- held back by the limit, the nodes hear of it.
redis.call('SREM', KEYS[9], id)
if f[7] and redis.call('HDEL', KEYS[10], f[7]) == 1 then
  redis.call('PUBLISH', ARGV[8], 'ready ' .. f[7])
end
if f[6] == '1' and kind ~= 'succeeded' then kind = 'cancelled' end
-- A cancelled attempt ends for the reason the cancel gave (which names who asked), if any.
local reason = ARGV[5]
if kind == 'cancelled' and f[9] then reason = f[9] end
redis.call('RPUSH', KEYS[5], cjson.encode({
  attempt = tonumber(attempt), node = node, started_ms = tonumber(f[5]), ended_ms = now,
  outcome = ARGV[9], reason = reason}))
local attempts, max = tonumber(f[3]), tonumber(f[4])
local state
if kind == 'succeeded' then
  state = 'SUCCEEDED'
  redis.call('HSET', KEYS[1], 'output', ARGV[5])
elseif kind == 'failed' then
  state = 'FAILED'
  redis.call('HSET', KEYS[1], 'reason', ARGV[5])
elseif kind == 'cancelled' then
  state = 'CANCELLED'
  redis.call('HSET', KEYS[1], 'reason', reason)
elseif kind == 'requeue' then
  -- Interrupted by the host (shutdown): the attempt does not count against the job.
  state = 'QUEUED'
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  local seq = redis.call('INCR', KEYS[8])
  redis.call('ZADD', KEYS[7], (255 - tonumber(f[8])) * 4398046511104 + seq, id)
  redis.call('PUBLISH', ARGV[8], 'ready ' .. f[7])
elseif attempts < max then
  state = 'SCHEDULED'
  local run_at = now + tonumber(ARGV[6])
  redis.call('HSET', KEYS[1], 'run_at_ms', run_at, 'reason', ARGV[5])
  redis.call('ZADD', KEYS[3], run_at, id)
  redis.call('SADD', KEYS[11], id)
else
  state = 'DEAD'
  redis.call('HSET', KEYS[1], 'reason', ARGV[5])
  redis.call('ZADD', KEYS[4], now, id)
end
redis.call('HSET', KEYS[1], 'state', state, 'updated_ms', now)
redis.call('HDEL', KEYS[1], 'lease_ms', 'node')
if state == 'SUCCEEDED' or state == 'FAILED' or state == 'CANCELLED' or state == 'DEAD' then
  redis.call('HSET', KEYS[1], 'finished_ms', now, 'last_node', node)
  local ttl = tonumber(ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[5], ttl)
  redis.call('PEXPIRE', KEYS[6], ttl)
  redis.call('PUBLISH', ARGV[8], 'done ' .. id)
else
  redis.call('HSET', KEYS[1], 'last_node', node)
end
return state
