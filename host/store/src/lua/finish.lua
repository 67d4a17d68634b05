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
--       6 values:
--       id, attempt, kind (succeeded|failed|retry|cancelled|requeue), output or reason,
--       retry delay ms, attempt outcome label
-- Returns the new state of each job, or 'stale'.
local now = clock_ms()
local prefix, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ok_ttl, ok_max, channel = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local archive_max = ARGV[7]
local out = {}
local succeeded = 0
local types = {}
local inflight = prefix .. 'inflight:' .. node
-- Gathered per key, sent once per key after the loop (see batch.lua).
local ended, freed, done = {}, {}, {}

local function finish(id, attempt, kind, text, delay, label)
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'node', 'attempts', 'max_attempts',
    'started_ms', 'cancel', 'type', 'priority', 'cancel_reason', 'keep', 'lost')
  if f[1] ~= 'RUNNING' or f[2] ~= node or f[3] ~= attempt then
    return 'stale'
  end
  local job_type = f[7] or ''
  ended[#ended + 1] = id
  if f[6] == '1' then redis.call('SREM', prefix .. 'cancels:' .. node, id) end
  -- The attempt's place under its type's concurrency limit is free again (announced once
  -- per type, below, if the type was held back by its limit).
  gather(freed, prefix .. 'running:' .. job_type, id)
  types[job_type] = true
  if f[6] == '1' and kind ~= 'succeeded' then kind = 'cancelled' end
  -- A cancelled attempt ends for the reason the cancel gave (which names who asked), if any.
  local reason = text
  if kind == 'cancelled' and f[9] then reason = f[9] end
  -- Attempts lost with their node do not count against max_attempts (see attempts.lua).
  local attempts, max = tonumber(f[3]), tonumber(f[4])
  local failed = attempts - (tonumber(f[11]) or 0)
  local state
  local fields = {'updated_ms', now}
  local function set(k, v) fields[#fields + 1], fields[#fields + 2] = k, v end
  if kind == 'succeeded' then
    state = 'SUCCEEDED'
    set('output', text)
  elseif kind == 'failed' then
    state = 'FAILED'
    set('reason', text)
  elseif kind == 'cancelled' then
    state = 'CANCELLED'
    set('reason', reason)
  elseif kind == 'requeue' then
    -- Interrupted by the host (shutdown): the attempt does not count against the job.
    state = 'QUEUED'
    set('attempts', attempts - 1)
    local seq = redis.call('INCR', KEYS[4])
    redis.call('ZADD', prefix .. 'queue:' .. job_type, (255 - (tonumber(f[8]) or 0)) * 4398046511104 + seq, id)
    redis.call('PUBLISH', channel, 'ready ' .. job_type)
  elseif failed < max then
    state = 'SCHEDULED'
    local run_at = now + tonumber(delay)
    set('run_at_ms', run_at)
    set('reason', text)
    redis.call('ZADD', KEYS[2], run_at, id)
    redis.call('SADD', prefix .. 'scheduled:' .. job_type, id)
  else
    state = 'DEAD'
    set('reason', text)
    redis.call('ZADD', KEYS[3], now, id)
  end
  local final = state ~= 'QUEUED' and state ~= 'SCHEDULED'
  record_attempt(prefix, id, final, {
    attempt = tonumber(attempt), node = node, started_ms = tonumber(f[5]), ended_ms = now,
    outcome = label, reason = reason}, fields)
  set('state', state)
  set('last_node', node)
  set('node', '')
  if final then set('finished_ms', now) end
  redis.call('HSET', job, unpack(fields))
  if final and to_archive(prefix, id, now, archive_max) then
    -- Kept whole until archived; its retention starts then (archive_done.lua).
  elseif state == 'SUCCEEDED' and f[10] ~= '1' then
    succeeded = succeeded + 1
    done[#done + 1], done[#done + 2] = now, id
    -- The record (and its log) expire by themselves; under load the trim below deletes
    -- them first.
    retain(prefix, id, true, ttl, ok_ttl)
  elseif final then
    retain(prefix, id, false, ttl)
  end
  return state
end

for i = 8, #ARGV, 6 do
  out[#out + 1] = finish(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
end

if #ended > 0 then call_many('SREM', inflight, ended) end
for key, ids in pairs(freed) do call_many('SREM', key, ids) end
if #done > 0 then call_many('ZADD', KEYS[6], done) end
for job_type in pairs(types) do
  if redis.call('HDEL', KEYS[5], job_type) == 1 then
    redis.call('PUBLISH', channel, 'ready ' .. job_type)
  end
end

trim_succeeded(prefix, KEYS[6], KEYS[7], now, ok_ttl, ok_max, succeeded)
return out
