-- A Chainlink node's wsrpc session: touch (keep it, if still this session's) or close (drop it,
-- if still this session's). A newer connection of the same node takes the session over by a
-- plain HSET, so an older one learns at its next touch that it must go.
-- KEYS[1] sessions hash (node id -> session id), KEYS[2] seen hash (node id -> Unix ms)
-- ARGV[1] node id, ARGV[2] session id, ARGV[3] "touch" or "close", ARGV[4] now (Unix ms)
-- Returns 1 while the session is this one's, else 0.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
if ARGV[3] == 'close' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
end
return 1
