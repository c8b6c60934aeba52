-- wrk script for the HTTP cases: rotates over the ten seeded users and, when done, prints one line
--   BENCH_JSON {...}
-- with the request count, errors and latency percentiles (microseconds) for bench/run.py to parse.
--
-- Usage: wrk -t2 -c32 -d10s -s bench/wrk/users.lua http://127.0.0.1:8000 -- MODE
--   MODE id    GET /users/1 .. /users/10
--        uuid  GET /users/uuid/550e8400-e29b-41d4-a716-446655440001 .. ...4400010
--        list  GET /users?limit=50

local requests = {}
local index = 0

function init(args)
  local mode = args[1] or "id"
  local paths = {}
  if mode == "id" then
    for n = 1, 10 do paths[#paths + 1] = "/users/" .. n end
  elseif mode == "uuid" then
    for n = 1, 10 do paths[#paths + 1] = string.format("/users/uuid/550e8400-e29b-41d4-a716-4466554400%02d", n) end
  elseif mode == "list" then
    paths[1] = "/users?limit=50"
  elseif mode == "batch" then
    paths[1] = "/users/batch?ids=1,2,3,4,5,6,7,8,9,10"
  else
    error("unknown mode: " .. mode .. " (expected id, uuid, list or batch)")
  end
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("GET", path)
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
