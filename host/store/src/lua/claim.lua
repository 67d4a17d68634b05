-- Claims up to ARGV[3] ready jobs of the given types for a node, highest priority first,
-- FIFO within a priority. Each becomes RUNNING with a lease; its attempt count grows.
-- Queues are taken in the order given (the caller rotates it so no type starves another).
-- A type with a concurrency limit gets no more than its free places: its running set (its
-- RUNNING jobs, cluster-wide) counts against the limit. A type at its limit is skipped,
-- not waited for, and flagged in the limited hash so that the next end of one of its jobs
-- announces the freed place ('ready <type>').
-- The node's lease (`leases`) is extended and each job joins its set `inflight:<node>`.
-- KEYS: 1 node leases, 2 limited hash, then per type i (from 1):
--       1 + 2i its ready queue, 2 + 2i its running set
-- ARGV: 1 key prefix, 2 node id, 3 max jobs, 4 lease ms, then per type i:
--       3 + 2i its name, 4 + 2i its concurrency limit (0 = none)
-- Returns a flat list per job: id, attempt, type, spec, labels, timeout_ms, cancel,
-- max_attempts, backoff_base_ms, backoff_max_ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = int(now)
local prefix, node, want, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local got = 0
local inflight = prefix .. 'inflight:' .. node
local claimed = {}
for i = 1, (#KEYS - 2) / 2 do
  if got >= want then break end
  local queue, runset = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local limit = tonumber(ARGV[4 + 2 * i]) or 0
  local room = want - got
  local free = nil
  local type_start = #claimed
  if limit > 0 then
    local running = redis.call('SCARD', runset)
    if running >= limit then
      -- Self-repair: an entry whose job is no longer RUNNING (a record deleted by hand,
      -- say) must not hold a place for ever. A few random ones are checked at the limit.
      for _, id in ipairs(redis.call('SRANDMEMBER', runset, 3)) do
        if redis.call('HGET', prefix .. 'job:' .. id, 'state') ~= 'RUNNING' then
          redis.call('SREM', runset, id)
          running = running - 1
        end
      end
    end
    free = limit - running
    room = math.min(room, free)
  end
  if room > 0 then
    -- The first `room` members, then removed in one call: ZPOPMIN would also reply their
    -- scores, each formatted with printf by Redis 7.0.
    local popped = redis.call('ZRANGE', queue, 0, room - 1)
    if #popped > 0 then call_many('ZREM', queue, popped) end
    for j = 1, #popped do
      local id = popped[j]
      local job = prefix .. 'job:' .. id
      -- One read and one write per job: the lease itself is the job's score in the running
      -- set, not a field of its hash.
      local f = redis.call('HMGET', job, 'state', 'attempts', 'type', 'spec', 'labels',
        'timeout_ms', 'cancel', 'max_attempts', 'backoff_base_ms', 'backoff_max_ms')
      if f[1] == 'QUEUED' then
        local attempt = (tonumber(f[2]) or 0) + 1
        -- (The time of the last change is the start: readers take the latest of the
        -- job's times, see parse_job.)
        redis.call('HSET', job, 'state', 'RUNNING', 'attempts', int(attempt), 'node', node,
          'started_ms', now_s)
        claimed[#claimed + 1] = id
        out[#out + 1] = id
        out[#out + 1] = attempt
        for k = 3, 10 do out[#out + 1] = f[k] or '' end
        got = got + 1
        if free then free = free - 1 end
      end
    end
  end
  if #claimed > type_start then
    local mine = {}
    for k = type_start + 1, #claimed do mine[#mine + 1] = claimed[k] end
    call_many('SADD', runset, mine)
  end
  if free and free <= 0 and redis.call('ZCARD', queue) > 0 then
    redis.call('HSET', KEYS[2], ARGV[3 + 2 * i], 1)
  end
end
-- The node's lease covers what it just claimed (never shortened by a claim).
if got > 0 then
  call_many('SADD', inflight, claimed)
  redis.call('ZADD', KEYS[1], 'GT', int(now + lease), node)
end
return out
