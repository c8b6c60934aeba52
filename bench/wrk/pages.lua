-- wrk script for bench/pages.py: random positions over USERS users, one line BENCH_JSON {...} when done.
--
-- Usage: wrk -t1 -c32 -d5s -s bench/wrk/pages.lua http://127.0.0.1:8000 -- MODE USERS
--   MODE id      GET /users/<random id in 1..USERS>
--        after   GET /users?limit=50&after=<random in 0..USERS-50>
--        offset  GET /users?limit=50&offset=<random in 0..USERS-50>

local mode, users

function init(args)
  mode = args[1] or "id"
  users = tonumber(args[2] or "100000")
  if mode ~= "id" and mode ~= "after" and mode ~= "offset" then
    error("unknown mode: " .. mode .. " (expected id, after or offset)")
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  if mode == "id" then
    return wrk.format("GET", "/users/" .. math.random(1, users))
  end
  return wrk.format("GET", "/users?limit=50&" .. mode .. "=" .. math.random(0, users - 50))
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%.1f,"p99_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)
  ))
end
