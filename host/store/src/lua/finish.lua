-- Records the ends of a batch of attempts and moves each job to its next state. Only the
-- node that holds an attempt may finish it (a stale node whose lease expired gets
-- 'stale' for that job; the others of the batch are recorded all the same).
-- Then keeps the succeeded jobs within their retention (age and count; a job marked `keep`
-- has the retention of failed ones instead; see trim_succeeded in attempts.lua).
-- KEYS: 1 node leases (unused: the node's jobs are `inflight:<node>`), 2 delayed set, 3 dead set, 4 sequence, 5 limited hash,
--       6 succeeded index, 7 job index
-- ARGV: 1 key prefix, 2 node, 3 retention ms (failed, cancelled, dead), 4 retention ms of
--       succeeded jobs, 5 most succeeded jobs kept, 6 event channel, 7 history outbox size
--       (0: no history; else a job that ends waits there, see attempts.lua), then per job
--       7 values:
--       id, attempt, kind (succeeded|failed|retry|cancelled|requeue), output or reason,
--       retry delay ms, attempt outcome label, logged ('1': this attempt stored log lines)
-- Returns the new state of each job, or 'stale'.
local now = clock_ms()
local now_s = int(now)
-- The retention times stay strings: they go to PEXPIRE as they came (see attempts.lua).
local prefix, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local ok_ttl, ok_max, channel = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local archive_max = ARGV[7]
local out = {}
local succeeded = 0
local types = {}
local inflight = prefix .. 'inflight:' .. node
-- Gathered per key, sent once per key after the loop (see batch.lua).
local ended, freed, done = {}, {}, {}
local function set(fields, k, v)
  fields[#fields + 1], fields[#fields + 2] = k, v
end

local function finish(id, attempt, kind, text, delay, label, logged)
  local job = prefix .. 'job:' .. id
  -- What every end needs; a field read costs about as much as the command around it, so
  -- what only a failure, a retry or a cancel needs is read in a second call (below).
  local f = redis.call('HMGET', job, 'state', 'node', 'attempts', 'cancel', 'type', 'keep')
  if f[1] ~= 'RUNNING' or f[2] ~= node or f[3] ~= attempt then
    return 'stale'
  end
  local job_type = f[5] or ''
  local cancel = f[4] == '1'
  local keep = f[6] == '1'
  local max_attempts, started_ms, priority, cancel_reason, lost
  if kind ~= 'succeeded' then
    local g = redis.call('HMGET', job, 'max_attempts', 'started_ms', 'priority',
      'cancel_reason', 'lost')
    max_attempts, started_ms, priority, cancel_reason, lost = g[1], g[2], g[3], g[4], g[5]
  end
  ended[#ended + 1] = id
  if cancel then redis.call('SREM', prefix .. 'cancels:' .. node, id) end
  -- The attempt's place under its type's concurrency limit is free again (announced once
  -- per type, below, if the type was held back by its limit).
  gather(freed, prefix .. 'running:' .. job_type, id)
  types[job_type] = true
  if cancel and kind ~= 'succeeded' then kind = 'cancelled' end
  -- A cancelled attempt ends for the reason the cancel gave (which names who asked), if any.
  local reason = text
  if kind == 'cancelled' and cancel_reason then reason = cancel_reason end
  -- Attempts lost with their node do not count against max_attempts (see attempts.lua).
  local attempts, max = tonumber(f[3]), tonumber(max_attempts) or 1
  local failed = attempts - (tonumber(lost) or 0)
  local state
  local fields = {}
  if kind == 'succeeded' then
    state = 'SUCCEEDED'
    set(fields, 'output', text)
  elseif kind == 'failed' then
    state = 'FAILED'
    set(fields, 'reason', text)
  elseif kind == 'cancelled' then
    state = 'CANCELLED'
    set(fields, 'reason', reason)
  elseif kind == 'requeue' then
    -- Interrupted by the host (shutdown): the attempt does not count against the job.
    state = 'QUEUED'
    set(fields, 'attempts', int(attempts - 1))
    local seq = redis.call('INCR', KEYS[4])
    redis.call('ZADD', prefix .. 'queue:' .. job_type, int((255 - (tonumber(priority) or 0)) * 4398046511104 + seq), id)
    redis.call('PUBLISH', channel, 'ready ' .. job_type)
  elseif failed < max then
    state = 'SCHEDULED'
    local run_at = now + tonumber(delay)
    set(fields, 'run_at_ms', int(run_at))
    set(fields, 'reason', text)
    redis.call('ZADD', KEYS[2], int(run_at), id)
    redis.call('SADD', prefix .. 'scheduled:' .. job_type, id)
  else
    state = 'DEAD'
    set(fields, 'reason', text)
    redis.call('ZADD', KEYS[3], now_s, id)
  end
  local final = state ~= 'QUEUED' and state ~= 'SCHEDULED'
  record_attempt(prefix, id, final, fields, label, tonumber(attempt), node,
    tonumber(started_ms), now, reason)
  set(fields, 'state', state)
  set(fields, 'last_node', node)
  set(fields, 'node', '')
  -- The time of this change: `finished_ms` when the job ended (readers take the latest of
  -- the job's times, see parse_job).
  set(fields, final and 'finished_ms' or 'updated_ms', now_s)
  redis.call('HSET', job, unpack(fields))
  if final and to_archive(prefix, id, now, archive_max) then
    -- Kept whole until archived; its retention starts then (archive_done.lua).
  elseif state == 'SUCCEEDED' and not keep then
    succeeded = succeeded + 1
    done[#done + 1], done[#done + 2] = now_s, id
    -- The record (and its log) expire by themselves; under load the trim below deletes
    -- them first. Only an attempt that logged, or a job that ran before, can have a log.
    retain(prefix, id, true, ttl, ok_ttl, logged == '1' or attempt ~= '1')
  elseif final then
    retain(prefix, id, false, ttl)
  end
  return state
end

for i = 8, #ARGV, 7 do
  out[#out + 1] = finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
    ARGV[i + 6])
end

if #ended > 0 then call_many('SREM', inflight, ended) end
for key, ids in pairs(freed) do call_many('SREM', key, ids) end
if #done > 0 then call_many('ZADD', KEYS[6], done) end
for job_type in pairs(types) do
  if redis.call('HDEL', KEYS[5], job_type) == 1 then
    redis.call('PUBLISH', channel, 'ready ' .. job_type)
  end
end

trim_succeeded(prefix, KEYS[6], KEYS[7], now, tonumber(ok_ttl), ok_max, succeeded)
return out
