-- Drops index entries of jobs whose records expired (retention), oldest first.
-- KEYS: 1 job index, 2 dead set   ARGV: 1 prefix, 2 batch size
-- Returns the number of entries dropped.
local dropped = 0
for k = 1, 2 do
  local ids = redis.call('ZRANGE', KEYS[k], 0, tonumber(ARGV[2]) - 1)
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', ARGV[1] .. 'job:' .. id) == 0 then
      redis.call('ZREM', KEYS[k], id)
      dropped = dropped + 1
    end
  end
end
return dropped
