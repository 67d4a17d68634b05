-- Re-queues the jobs of nodes whose lease expired (they died or lost Redis): the attempt
-- counts, and is recorded as lost. Any node may run this; it is idempotent.
-- A lease is per node (`leases`: node -> deadline, extended by its claims and renewals);
-- its jobs are the set `inflight:<node>`, popped here as they are handled, so a dead
-- node's jobs are re-queued once, as a set. (`running` is the per-job lease set of nodes
-- before 0.2, handled the same way until it is empty.)
-- Each job's place under its type's concurrency limit is freed (announced if the type was
-- held back by its limit), so a dead node's jobs never hold places for ever.
-- KEYS: 1 node leases, 2 dead set, 3 sequence, 4 limited hash, 5 legacy running set
-- ARGV: 1 prefix, 2 most jobs handled, 3 event channel, 4 retention ms, 5 history outbox size (0: off)
-- Returns the number of jobs handled.
local now = clock_ms()
local limit, channel = tonumber(ARGV[2]), ARGV[3]
local prefix = ARGV[1]
local handled = 0

for _, node in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, 16)) do
  if handled >= limit then break end
  local inflight = prefix .. 'inflight:' .. node
  for _, id in ipairs(redis.call('SPOP', inflight, limit - handled)) do
    handled = handled + 1
    end_lost(id, node, now, KEYS, channel, ARGV[4], ARGV[5])
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
    handled = handled + 1
    end_lost(id, nil, now, KEYS, channel, ARGV[4], ARGV[5])
  end
end
return handled
