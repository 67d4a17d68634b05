-- Cancels a job. Queued or scheduled: removed and CANCELLED at once. Running: flagged (with
-- the reason, which finish.lua records), and the node running it is told on the event
-- channel (and sees the flag at its next lease renewal); it records CANCELLED when the
-- plugin has stopped.
-- KEYS: 1 job hash, 2 delayed set, 3 attempts list
-- ARGV: 1 id, 2 prefix, 3 event channel, 4 retention ms, 5 reason, 6 who asked (may be empty),
--       7 history outbox size (0: off)
-- Returns 'not_found', 'cancelled', 'cancelling', or the final state it already had.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'state', 'type', 'node')
local state = f[1]
if not state then return 'not_found' end
if state == 'QUEUED' or state == 'SCHEDULED' then
  redis.call('ZREM', ARGV[2] .. 'queue:' .. f[2], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', ARGV[2] .. 'scheduled:' .. f[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'CANCELLED', 'reason', ARGV[5], 'updated_ms', now,
    'finished_ms', now, 'cancel', 1, 'cancelled_by', ARGV[6])
  if not to_archive(ARGV[2], ARGV[1], now, ARGV[7]) then
    retain(ARGV[2], ARGV[1], false, ARGV[4])
  end
  return 'cancelled'
end
if state == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'cancel', 1, 'cancel_reason', ARGV[5], 'cancelled_by', ARGV[6],
    'updated_ms', now)
  -- Its node also sees it at its next lease renewal, should the message be lost.
  if f[3] and f[3] ~= '' then redis.call('SADD', ARGV[2] .. 'cancels:' .. f[3], ARGV[1]) end
  redis.call('PUBLISH', ARGV[3], 'cancel ' .. ARGV[1])
  return 'cancelling'
end
return state
