-- Extends a node's lease (one per node, not per job: `leases`), and says which of the jobs
-- it runs had their cancellation requested (so a lost cancel message is still seen) and
-- which it no longer holds (re-queued by another node after its lease expired).
-- KEYS: 1 node leases   ARGV: 1 prefix, 2 node, 3 lease ms, 4.. ids of the jobs it runs
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, node)
local lost = {}
if #ARGV >= 4 then
  local held = redis.call('SMISMEMBER', prefix .. 'inflight:' .. node, unpack(ARGV, 4))
  for i, member in ipairs(held) do
    if member == 0 then lost[#lost + 1] = ARGV[i + 3] end
  end
end
return {redis.call('SMEMBERS', prefix .. 'cancels:' .. node), lost}
