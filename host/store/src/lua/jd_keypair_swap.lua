-- Replaces the JD's keypair record only if it is unchanged since it was read (the migration
-- of a key stored unencrypted by an older version).
-- KEYS[1] keypair key; ARGV[1] record as read, ARGV[2] new record
-- Returns 1 when replaced, 0 when it changed meanwhile.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
