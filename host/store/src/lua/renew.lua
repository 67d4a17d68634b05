-- Extends a node's lease (one per node, not per job: `leases`) and reconciles what it
-- holds in Redis (`inflight:<node>`) with what it knows of:
-- - `lost`: jobs it runs that it no longer holds (another node re-queued them after its
--   lease lapsed): it stops them;
-- - jobs it holds but neither runs nor is recording, claimed over a lease ago (a claim
--   whose answer never reached it, an outcome it gave up recording) are ended as lost, as
--   a dead node's would be, so they cannot hold a place while the node lives on;
-- - `cancelled`: jobs it runs whose cancellation was requested (so a lost cancel message is
--   still seen); entries for jobs it no longer runs are dropped.
-- KEYS: 1 node leases, 2 dead set, 3 sequence, 4 limited hash
-- ARGV: 1 prefix, 2 node, 3 lease ms, 4 retention ms, 5 event channel, 6 history outbox
--       size (0: off), 7 n, then the n ids of the jobs it runs, then the ids of those whose
--       outcome it is recording
-- Returns {cancelled, lost}.
local now = clock_ms()
local prefix, node, lease, n = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[7])
redis.call('ZADD', KEYS[1], now + lease, node)
local inflight, cancels = prefix .. 'inflight:' .. node, prefix .. 'cancels:' .. node
local known = {}
for i = 8, #ARGV do known[ARGV[i]] = true end

local lost = {}
local last = 7 + n
for from = 8, last, 1000 do -- (in chunks: unpack takes a few thousand values at most)
  local to = math.min(from + 999, last)
  local held = redis.call('SMISMEMBER', inflight, unpack(ARGV, from, to))
  for k, member in ipairs(held) do
    if member == 0 then lost[#lost + 1] = ARGV[from + k - 1] end
  end
end

for _, id in ipairs(redis.call('SMEMBERS', inflight)) do
  if not known[id] then
    local started = tonumber(redis.call('HGET', prefix .. 'job:' .. id, 'started_ms')) or 0
    if started < now - lease then
      redis.call('SREM', inflight, id)
      end_lost(id, node, now, KEYS, ARGV[5], ARGV[4], ARGV[6],
        'node ' .. node .. ' no longer ran it: its outcome was never recorded')
    end
  end
end

local cancelled = {}
for _, id in ipairs(redis.call('SMEMBERS', cancels)) do
  if known[id] then
    cancelled[#cancelled + 1] = id
  else
    local f = redis.call('HMGET', prefix .. 'job:' .. id, 'state', 'node')
    if f[1] ~= 'RUNNING' or f[2] ~= node then redis.call('SREM', cancels, id) end
  end
end
return {cancelled, lost}
