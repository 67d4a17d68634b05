-- Shared by the scripts that end attempts (finish, reap): prepended to them when loaded.
--
-- Where an attempt is recorded: a job's final attempt lives in its own hash (`outcome`,
-- with `attempts`, `last_node`, `started_ms`, `finished_ms` and `output`/`reason` that the
-- hash holds anyway), so a job done in one attempt writes no attempts list; an attempt
-- after which the job runs again (a retry, a lost lease, an interruption) is appended to
-- `attempts:<id>` as JSON. Readers list the appended ones, then the final one.
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The history outbox (`archive`, score = finish time): with history on (`max` > 0), a job
-- that ends waits there, whole and without expiry, until a node has written it to
-- PostgreSQL (archive_done.lua then starts its Redis retention). Full: the job keeps its
-- usual retention and is not archived; `archive:overflow` counts it. Returns whether it
-- went in. The outbox is counted once per script call.
local archive_room = nil
local function to_archive(prefix, id, now, max)
  max = tonumber(max) or 0
  if max <= 0 then return false end
  if archive_room == nil then
    archive_room = max - redis.call('ZCARD', prefix .. 'archive')
  end
  if archive_room <= 0 then
    redis.call('INCR', prefix .. 'archive:overflow')
    return false
  end
  archive_room = archive_room - 1
  redis.call('ZADD', prefix .. 'archive', now, id)
  return true
end

-- Starts the Redis retention of a job that ended: `ttl` for FAILED, CANCELLED and DEAD ones
-- (and succeeded ones marked `keep`), `ok_ttl` for SUCCEEDED ones (both in ms, as the
-- strings the caller was given). A SUCCEEDED job's log is looked after only when `logged`
-- says it may have one: most succeeded jobs log nothing, and a command per job is a good
-- part of what a job costs Redis. (A log missed all the same goes with the sweep once its
-- record has expired, see sweep.lua.) The caller adds a SUCCEEDED job to the succeeded
-- index (see trim_succeeded).
local function retain(prefix, id, succeeded, ttl, ok_ttl, logged)
  local job = prefix .. 'job:' .. id
  if succeeded then
    redis.call('PEXPIRE', job, ok_ttl)
    if logged then redis.call('PEXPIRE', prefix .. 'log:' .. id, ok_ttl) end
  else
    redis.call('PEXPIRE', job, ttl)
    redis.call('PEXPIRE', prefix .. 'attempts:' .. id, ttl)
    redis.call('PEXPIRE', prefix .. 'log:' .. id, ttl)
  end
end

-- Keeps the succeeded jobs within their retention (age and count) after `added` went into
-- the succeeded index (ordered by finish time: what is too old and what is over the count
-- are both its oldest entries). A few more are deleted per call than were added, so the
-- clean-up keeps up with any rate the nodes run at.
local function trim_succeeded(prefix, index, jobs, now, ok_ttl, ok_max, added)
  if added <= 0 then return end
  local excess = math.max(redis.call('ZCARD', index) - ok_max,
    redis.call('ZCOUNT', index, '-inf', now - ok_ttl))
  local n = math.min(excess, 2 * added + 16)
  if n <= 0 then return end
  -- Two commands for the whole lot, not two per job (see batch.lua).
  local ids, keys = redis.call('ZRANGE', index, 0, n - 1), {}
  for _, id in ipairs(ids) do
    keys[#keys + 1] = prefix .. 'job:' .. id
    keys[#keys + 1] = prefix .. 'log:' .. id
    keys[#keys + 1] = prefix .. 'attempts:' .. id
  end
  for from = 1, #keys, 3000 do
    redis.call('UNLINK', unpack(keys, from, math.min(from + 2999, #keys)))
  end
  if #ids > 0 then call_many('ZREM', jobs, ids) end
  redis.call('ZREMRANGEBYRANK', index, 0, n - 1)
end

-- A final attempt adds its field to `fields`, the caller's pending HSET of the job; any
-- other is appended to the job's attempts list (the record is built only then).
local function record_attempt(prefix, id, final, fields, outcome, attempt, node, started_ms,
                              ended_ms, reason)
  if final then
    fields[#fields + 1], fields[#fields + 2] = 'outcome', outcome
  else
    redis.call('RPUSH', prefix .. 'attempts:' .. id, cjson.encode({
      attempt = attempt, node = node, started_ms = started_ms, ended_ms = ended_ms,
      outcome = outcome, reason = reason}))
  end
end

-- Ends the attempt of `id` on `holder` as lost, if that node still holds it (any holder
-- when nil): re-queued, else DEAD (CANCELLED if it was being cancelled). Used by reap (a
-- node whose lease lapsed) and renew (a job its node no longer knows of). `keys` are the
-- caller's KEYS: 2 dead set, 3 sequence, 4 limited hash; ARGV[1] is the key prefix;
-- `archive_max` is the history outbox's size (0: no history); `why` replaces the
-- lease-expiry reason.
--
-- A lost attempt is the node's failure, not the job's: it does not use up the job's
-- `max_attempts` (which counts the attempts its plugin ended), only a budget of its own,
-- MAX_LOST. The first loss re-queues at once; after a second one the job waits a spread-out
-- while (up to a quarter second per loss so far, at most LOST_SPREAD_MAX_MS) so that the
-- jobs of a crash-looping node do not all land together on the next node to die.
local MAX_LOST = 10
local LOST_SPREAD_MAX_MS = 2500
local function end_lost(id, holder, now, keys, channel, retention_ms, archive_max, why)
  local prefix = ARGV[1]
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'node', 'attempts', 'max_attempts',
    'started_ms', 'type', 'priority', 'cancel', 'cancel_reason', 'lost')
  if f[1] ~= 'RUNNING' or (holder and f[2] ~= holder) then return end
  if f[6] then
    redis.call('SREM', prefix .. 'running:' .. f[6], id)
    if redis.call('HDEL', keys[4], f[6]) == 1 then
      redis.call('PUBLISH', channel, 'ready ' .. f[6])
    end
  end
  local lost = (tonumber(f[10]) or 0) + 1
  local attempts = tonumber(f[3]) or 1
  local failed = attempts - lost
  local state
  local fields = {'lost', lost}
  if f[8] == '1' then
    state = 'CANCELLED'
  elseif lost <= MAX_LOST and failed < (tonumber(f[4]) or 1) and f[6] then
    local seq = redis.call('INCR', keys[3])
    if lost == 1 then
      state = 'QUEUED'
      redis.call('ZADD', prefix .. 'queue:' .. f[6], (255 - (tonumber(f[7]) or 0)) * 4398046511104 + seq, id)
      redis.call('PUBLISH', channel, 'ready ' .. f[6])
    else
      state = 'SCHEDULED'
      local spread = math.min((lost - 1) * 250, LOST_SPREAD_MAX_MS)
      local run_at = now + (seq * 7919 + now) % spread
      fields[#fields + 1], fields[#fields + 2] = 'run_at_ms', run_at
      redis.call('ZADD', prefix .. 'delayed', run_at, id)
      redis.call('SADD', prefix .. 'scheduled:' .. f[6], id)
    end
  else
    state = 'DEAD'
    redis.call('ZADD', keys[2], now, id)
  end
  local reason = why or ('lease expired: node ' .. (f[2] or '?') .. ' stopped renewing it')
  if state == 'DEAD' and lost > MAX_LOST then
    reason = reason .. ' (lost ' .. lost .. ' times; a job is re-queued after at most '
      .. MAX_LOST .. ' losses)'
  end
  record_attempt(prefix, id, state ~= 'QUEUED' and state ~= 'SCHEDULED', fields, 'lost',
    attempts, f[2] or '', tonumber(f[5]) or 0, now, reason)
  -- A job cancelled while its node died ends for the reason its cancel gave.
  if state == 'CANCELLED' and f[9] then reason = f[9] end
  redis.call('HSET', job, 'state', state, 'updated_ms', now, 'last_node', f[2] or '',
    'reason', reason, 'node', '', unpack(fields))
  if state ~= 'QUEUED' and state ~= 'SCHEDULED' then
    redis.call('HSET', job, 'finished_ms', now)
    if not to_archive(prefix, id, now, archive_max) then
      retain(prefix, id, false, retention_ms)
    end
  end
end
