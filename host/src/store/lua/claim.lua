-- Claims up to ARGV[3] ready jobs of the given types for a node, highest priority first,
-- FIFO within a priority. Each becomes RUNNING with a lease; its attempt count grows.
-- KEYS: 1 running set (lease deadlines), 2.. ready queues, one per type
-- ARGV: 1 key prefix, 2 node id, 3 max jobs, 4 lease ms
-- Returns a flat list per job: id, attempt, type, spec, labels, timeout_ms, cancel,
-- max_attempts, backoff_base_ms, backoff_max_ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, node, want, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local got = 0
for q = 2, #KEYS do
  if got >= want then break end
  local popped = redis.call('ZPOPMIN', KEYS[q], want - got)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local job = prefix .. 'job:' .. id
    if redis.call('HGET', job, 'state') == 'QUEUED' then
      local attempt = redis.call('HINCRBY', job, 'attempts', 1)
      redis.call('HSET', job, 'state', 'RUNNING', 'node', node, 'started_ms', now,
        'updated_ms', now, 'lease_ms', now + lease)
      redis.call('ZADD', KEYS[1], now + lease, id)
      local f = redis.call('HMGET', job, 'type', 'spec', 'labels', 'timeout_ms', 'cancel',
        'max_attempts', 'backoff_base_ms', 'backoff_max_ms')
      out[#out + 1] = id
      out[#out + 1] = attempt
      for j = 1, 8 do out[#out + 1] = f[j] or '' end
      got = got + 1
    end
  end
end
return out
