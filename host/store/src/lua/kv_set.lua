-- Sets a key of a plugin's key-value state, unless that would take it over its key limit.
-- KEYS[1] the plugin's hash; ARGV[1] key, ARGV[2] value, ARGV[3] most keys allowed
-- Returns -1 when stored; else the number of keys the plugin already has (it is full).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  local keys = redis.call('HLEN', KEYS[1])
  if keys >= tonumber(ARGV[3]) then
    return keys
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return -1
