-- Shared by the scripts that handle many jobs per call (enqueue, claim, finish): prepended
-- to them when loaded. A command per job costs the script more than the command itself
-- (arguments and reply go between Lua and Redis each time), so values are gathered and sent
-- in one variadic command per key.

-- Runs `command key v1 v2 ...` over `values`, in chunks that Lua's unpack can take.
local function call_many(command, key, values)
  for from = 1, #values, 4000 do
    redis.call(command, key, unpack(values, from, math.min(from + 3999, #values)))
  end
end

-- Adds `value` to the list of `key` in `lists` (a table of lists by key).
local function gather(lists, key, value)
  local list = lists[key]
  if not list then
    list = {}
    lists[key] = list
  end
  list[#list + 1] = value
end


-- `n` (an integer) as a command argument. Numbers go to Redis as strings made once: Redis
-- 7.0 formats a Lua number argument with printf("%.17g"), which costs more than the
-- command it is passed to, where '%d' is an integer's plain formatting.
local function int(n)
  return string.format('%d', n)
end
