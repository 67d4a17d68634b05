-- Re-queues jobs whose lease expired (their node died or lost Redis): the attempt counts,
-- and is recorded as lost. Any node may run this; it is idempotent.
-- Each job's place under its type's concurrency limit is freed (announced if the type was
-- held back by its limit), so a dead node's jobs never hold places for ever.
-- KEYS: 1 running set, 2 dead set, 3 sequence, 4 limited hash
-- ARGV: 1 prefix, 2 limit, 3 event channel, 4 retention ms
-- Returns the number of jobs handled.
local now = clock_ms()
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'node', 'attempts', 'max_attempts',
    'started_ms', 'type', 'priority', 'cancel', 'cancel_reason')
  if f[6] then
    redis.call('SREM', prefix .. 'running:' .. f[6], id)
    if redis.call('HDEL', KEYS[4], f[6]) == 1 then
      redis.call('PUBLISH', ARGV[3], 'ready ' .. f[6])
    end
  end
  if f[1] == 'RUNNING' then
    local state
    if f[8] == '1' then
      state = 'CANCELLED'
    elseif (tonumber(f[3]) or 1) < (tonumber(f[4]) or 1) and f[6] then
      state = 'QUEUED'
      local seq = redis.call('INCR', KEYS[3])
      redis.call('ZADD', prefix .. 'queue:' .. f[6], (255 - (tonumber(f[7]) or 0)) * 4398046511104 + seq, id)
      redis.call('PUBLISH', ARGV[3], 'ready ' .. f[6])
    else
      state = 'DEAD'
      redis.call('ZADD', KEYS[2], now, id)
    end
    local reason = 'lease expired: node ' .. (f[2] or '?') .. ' stopped renewing it'
    local fields = {}
    record_attempt(prefix, id, state ~= 'QUEUED', {
      attempt = tonumber(f[3]) or 0, node = f[2] or '', started_ms = tonumber(f[5]) or 0,
      ended_ms = now, outcome = 'lost', reason = reason}, fields)
    -- A job cancelled while its node died ends for the reason its cancel gave.
    if state == 'CANCELLED' and f[9] then reason = f[9] end
    redis.call('HSET', job, 'state', state, 'updated_ms', now, 'last_node', f[2] or '',
      'reason', reason, 'node', '', unpack(fields))
    if state ~= 'QUEUED' then
      local ttl = tonumber(ARGV[4])
      redis.call('HSET', job, 'finished_ms', now)
      redis.call('PEXPIRE', job, ttl)
      redis.call('PEXPIRE', prefix .. 'attempts:' .. id, ttl)
      redis.call('PEXPIRE', prefix .. 'log:' .. id, ttl)
    end
  end
end
return #ids
