-- Removes the head of a node's outbox if it is still the command that was sent.
-- KEYS[1] outbox list; ARGV[1] the command as read
-- Returns 1 when removed, 0 when the head is another (or the list is empty).
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then
  return 0
end
redis.call('LPOP', KEYS[1])
return 1
