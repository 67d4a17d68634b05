-- Drops index entries of jobs whose records expired (retention), and any log or attempt
-- key left behind (e.g. written by a node that lost its lease after the job ended).
-- The job index is walked with a cursor that wraps around, so long-lived jobs at the old
-- end never stop the sweep; the dead set is ordered by time of death, oldest first.
-- Succeeded jobs past their retention go too (`finish` trims them under load; this is for
-- a deployment that went quiet).
-- KEYS: 1 job index, 2 dead set, 3 sweep cursor, 4 succeeded index
-- ARGV: 1 prefix, 2 batch size, 3 retention ms of succeeded jobs
-- Returns the number of entries dropped.
local prefix, batch = ARGV[1], tonumber(ARGV[2])
local dropped = 0
local function gone(id)
  if redis.call('EXISTS', prefix .. 'job:' .. id) == 1 then return false end
  redis.call('DEL', prefix .. 'log:' .. id, prefix .. 'attempts:' .. id)
  return true
end
local cursor = redis.call('GET', KEYS[3])
local from = cursor and ('(' .. cursor) or '-'
local ids = redis.call('ZRANGE', KEYS[1], from, '+', 'BYLEX', 'LIMIT', 0, batch)
for _, id in ipairs(ids) do
  if gone(id) then
    redis.call('ZREM', KEYS[1], id)
    dropped = dropped + 1
  end
end
if #ids < batch then
  redis.call('DEL', KEYS[3])
else
  redis.call('SET', KEYS[3], ids[#ids])
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, batch - 1)) do
  if gone(id) then
    redis.call('ZREM', KEYS[2], id)
    dropped = dropped + 1
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGE', KEYS[4], '-inf', now - tonumber(ARGV[3]), 'BYSCORE', 'LIMIT', 0, batch)
for _, id in ipairs(old) do
  redis.call('UNLINK', prefix .. 'job:' .. id, prefix .. 'log:' .. id, prefix .. 'attempts:' .. id)
  redis.call('ZREM', KEYS[4], id)
  -- (Counted once: the index pass above may have dropped its entry already.)
  dropped = dropped + redis.call('ZREM', KEYS[1], id)
end
return dropped
