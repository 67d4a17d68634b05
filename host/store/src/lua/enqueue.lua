-- Creates a batch of jobs, each as one job would be created alone: its hash, its place in
-- the ready queue (or the delayed set), its idempotency key, its entry in the job index.
-- Jobs are taken in order, so a later job of the batch sees the earlier ones (their
-- idempotency keys, their places under a queue limit). One `ready <type>` is published per
-- type that got a ready job, not one per job.
-- KEYS: 1 delayed set, 2 sequence, 3 job index (per-job keys are built from the prefix:
--       every key shares the hash tag, so this is valid on Cluster)
-- ARGV: 1 key prefix, 2 idempotency ttl ms, 3 event channel, then per job a header of
--       7 values: id, run_at_ms (0 = now), priority (0-255), job type, max waiting jobs of
--       the type (0 = no limit), idempotency key ('' = none), n = number of hash fields;
--       then the n field/value pairs of the job hash (2n values)
-- Returns {now ms, then per job: id, created, waiting}, where created is 1 (created),
-- 0 (a known idempotency key: id is the earlier job's) or -1 (the type's queue is full:
-- nothing was written for that job; waiting is how many wait).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = int(now)
local prefix, idem_ttl, channel = ARGV[1], ARGV[2], ARGV[3]
local out = {now}
local ready = {}
-- Gathered per key, sent once per key after the loop (see batch.lua); `added` counts a
-- type's jobs made waiting by this batch, for its queue limit.
local queued, scheduled_ids, delayed, indexed, added = {}, {}, {}, {}, {}
-- Sequence numbers (FIFO within a priority) are taken for the whole batch at once.
local seq

local function waiting_of(job_type, limit)
  local queue, scheduled = prefix .. 'queue:' .. job_type, prefix .. 'scheduled:' .. job_type
  -- Waiting = QUEUED (the ready queue) + SCHEDULED (the type's scheduled set).
  local waiting = redis.call('ZCARD', queue) + redis.call('SCARD', scheduled)
    + (added[job_type] or 0)
  if waiting >= limit then
    -- Self-repair: a scheduled entry whose job is gone or moved on (a record deleted by
    -- hand, say) must not hold a place for ever. A few random ones are checked per refusal.
    for _, id in ipairs(redis.call('SRANDMEMBER', scheduled, 3)) do
      if redis.call('HGET', prefix .. 'job:' .. id, 'state') ~= 'SCHEDULED' then
        redis.call('SREM', scheduled, id)
        waiting = waiting - 1
      end
    end
  end
  return waiting
end

-- The batch is checked whole before anything is written: a script that failed half-way
-- would leave jobs written but in no queue.
local jobs = 0
do
  local j = 4
  while j <= #ARGV do
    local n = tonumber(ARGV[j + 6])
    if not n or not tonumber(ARGV[j + 1]) or not tonumber(ARGV[j + 2])
      or not tonumber(ARGV[j + 4]) or j + 6 + 2 * n > #ARGV then
      return redis.error_reply('enqueue: malformed job header at argument ' .. j)
    end
    jobs = jobs + 1
    j = j + 7 + 2 * n
  end
end

local i = 4
while i <= #ARGV do
  local id, run_at_s, priority = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local run_at = tonumber(run_at_s)
  local job_type, limit, idem = ARGV[i + 3], tonumber(ARGV[i + 4]), ARGV[i + 5]
  local n = tonumber(ARGV[i + 6])
  local first, last = i + 7, i + 6 + 2 * n
  i = last + 1
  local idem_key = idem ~= '' and (prefix .. 'idem:' .. idem)
  local existing = idem_key and redis.call('GET', idem_key)
  local waiting = 0
  if limit > 0 and not existing then waiting = waiting_of(job_type, limit) end
  if existing then
    out[#out + 1], out[#out + 2], out[#out + 3] = existing, 0, 0
  elseif limit > 0 and waiting >= limit then
    out[#out + 1], out[#out + 2], out[#out + 3] = '', -1, waiting
  else
    -- One HSET per job: its fixed fields, then the ones the caller gave. Not written, as
    -- readers know them without (see parse_job): the id (the key names it) and the time
    -- of the last change while it is the creation time.
    local fields = {'created_ms', now_s}
    if run_at > now then
      fields[#fields + 1], fields[#fields + 2] = 'state', 'SCHEDULED'
      -- As the caller wrote it (a number, checked above): no formatting needed.
      fields[#fields + 1], fields[#fields + 2] = 'run_at_ms', run_at_s
      delayed[#delayed + 1], delayed[#delayed + 2] = run_at_s, id
      gather(scheduled_ids, prefix .. 'scheduled:' .. job_type, id)
    else
      if not seq then
        -- At most one number per job of the batch; the unused ones are gaps, harmless.
        seq = redis.call('INCRBY', KEYS[2], jobs) - jobs
      end
      seq = seq + 1
      fields[#fields + 1], fields[#fields + 2] = 'state', 'QUEUED'
      local queue = prefix .. 'queue:' .. job_type
      gather(queued, queue, int((255 - priority) * 4398046511104 + seq))
      gather(queued, queue, id)
      ready[job_type] = true
    end
    added[job_type] = (added[job_type] or 0) + 1
    if idem_key then
      redis.call('SET', idem_key, id, 'PX', idem_ttl)
      fields[#fields + 1], fields[#fields + 2] = 'idempotency_key_ref', idem_key
    end
    for k = first, last do fields[#fields + 1] = ARGV[k] end
    redis.call('HSET', prefix .. 'job:' .. id, unpack(fields))
    indexed[#indexed + 1], indexed[#indexed + 2] = '0', id -- ids are time-ordered
    out[#out + 1], out[#out + 2], out[#out + 3] = id, 1, 0
  end
end
for queue, pairs_ in pairs(queued) do call_many('ZADD', queue, pairs_) end
for key, ids in pairs(scheduled_ids) do call_many('SADD', key, ids) end
if #delayed > 0 then call_many('ZADD', KEYS[1], delayed) end
if #indexed > 0 then call_many('ZADD', KEYS[3], indexed) end -- the index is ordered by id
for job_type in pairs(ready) do
  redis.call('PUBLISH', channel, 'ready ' .. job_type)
end
return out
