-- Gives up the leader lease only if the caller still holds it (compare and delete).
-- KEYS: 1 leader key   ARGV: 1 "<node> <token>"   Returns 1 if deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
