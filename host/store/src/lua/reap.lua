-- Re-queues the jobs of nodes whose lease expired (they died or lost Redis): the attempt
-- counts, and is recorded as lost. Any node may run this; it is idempotent.
-- A lease is per node (`leases`: node -> deadline, extended by its claims and renewals);
-- its jobs are the set `inflight:<node>`, popped here as they are handled, so a dead
-- node's jobs are re-queued once, as a set. (`running` is the per-job lease set of nodes
-- before 0.2, handled the same way until it is empty.)
-- Each job's place under its type's concurrency limit is freed (announced if the type was
-- held back by its limit), so a dead node's jobs never hold places for ever.
-- KEYS: 1 node leases, 2 dead set, 3 sequence, 4 limited hash, 5 legacy running set
-- ARGV: 1 prefix, 2 most jobs handled, 3 event channel, 4 retention ms
-- Returns the number of jobs handled.
local now = clock_ms()
local prefix, limit, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local handled = 0

-- Ends the attempt of `id` on `holder` (a node whose lease expired), if it still holds it.
local function reap(id, holder)
  handled = handled + 1
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'node', 'attempts', 'max_attempts',
    'started_ms', 'type', 'priority', 'cancel', 'cancel_reason')
  if f[1] ~= 'RUNNING' or (holder and f[2] ~= holder) then return end
  if f[6] then
    redis.call('SREM', prefix .. 'running:' .. f[6], id)
    if redis.call('HDEL', KEYS[4], f[6]) == 1 then
      redis.call('PUBLISH', channel, 'ready ' .. f[6])
    end
  end
  local state
  if f[8] == '1' then
    state = 'CANCELLED'
  elseif (tonumber(f[3]) or 1) < (tonumber(f[4]) or 1) and f[6] then
    state = 'QUEUED'
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', prefix .. 'queue:' .. f[6], (255 - (tonumber(f[7]) or 0)) * 4398046511104 + seq, id)
    redis.call('PUBLISH', channel, 'ready ' .. f[6])
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

for _, node in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, 16)) do
  if handled >= limit then break end
  local inflight = prefix .. 'inflight:' .. node
  for _, id in ipairs(redis.call('SPOP', inflight, limit - handled)) do
    reap(id, node)
  end
  if redis.call('SCARD', inflight) == 0 then
    redis.call('ZREM', KEYS[1], node)
    redis.call('DEL', prefix .. 'cancels:' .. node)
  end
end

if handled < limit then
  local ids = redis.call('ZRANGE', KEYS[5], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit - handled)
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[5], id)
    reap(id, nil)
  end
end
return handled
