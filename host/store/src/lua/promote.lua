-- Moves due jobs from the delayed set to their ready queues (and out of their type's
-- scheduled set: they stay waiting, now QUEUED). Idempotent; any node may run it.
-- KEYS: 1 delayed set, 2 sequence   ARGV: 1 prefix, 2 limit, 3 event channel
-- Returns the number of jobs moved.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'type', 'priority')
  if f[2] then redis.call('SREM', prefix .. 'scheduled:' .. f[2], id) end
  if f[1] == 'SCHEDULED' and f[2] then
    local seq = redis.call('INCR', KEYS[2])
    redis.call('HSET', job, 'state', 'QUEUED', 'updated_ms', now)
    redis.call('ZADD', prefix .. 'queue:' .. f[2], (255 - (tonumber(f[3]) or 0)) * 4398046511104 + seq, id)
    redis.call('PUBLISH', ARGV[3], 'ready ' .. f[2])
    moved = moved + 1
  end
end
return moved
