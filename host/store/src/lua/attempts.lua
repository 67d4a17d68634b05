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

-- A final attempt adds its field to `fields`, the caller's pending HSET of the job.
local function record_attempt(prefix, id, final, record, fields)
  if final then
    fields[#fields + 1], fields[#fields + 2] = 'outcome', record.outcome
  else
    redis.call('RPUSH', prefix .. 'attempts:' .. id, cjson.encode(record))
  end
end

