-- Extends the leases of a node's running jobs. Returns the ids among them whose
-- cancellation was requested (so a lost cancel message is still seen), and those the node
-- no longer holds (re-queued by another node after a lease expiry).
-- KEYS: 1 running set   ARGV: 1 prefix, 2 node, 3 lease ms, 4.. job ids
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cancelled, lost = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local job = prefix .. 'job:' .. id
  local f = redis.call('HMGET', job, 'state', 'node', 'cancel')
  if f[1] == 'RUNNING' and f[2] == node then
    redis.call('ZADD', KEYS[1], now + lease, id)
    if f[3] == '1' then cancelled[#cancelled + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {cancelled, lost}
