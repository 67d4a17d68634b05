-- Takes or keeps the leader lease. The value is "<node> <token>"; the token grows with
-- every change of leader, so work fenced by it cannot be done twice by an expired leader.
-- KEYS: 1 leader key, 2 token counter   ARGV: 1 node, 2 ttl ms
-- Returns the token if this node leads, else false.
local current = redis.call('GET', KEYS[1])
if not current then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
  return token
end
local node, token = string.match(current, '^(.*) (%d+)$')
if node == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(token)
end
return false
