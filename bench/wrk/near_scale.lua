-- wrk script for bench/near_scale.py: GET /users/{id} with ids drawn from a distribution, and one line
--   BENCH_JSON {...}
-- at the end (request count, errors, latency percentiles in microseconds).
--
-- Usage: wrk -t1 -c32 -d10s -s bench/wrk/near_scale.lua http://127.0.0.1:8000 -- MODE N
--   MODE uniform  ids uniform over 1..N
--        zipf     ids Zipf(1.0) over 1..N (rank = id)
--        hot      ids 1..10 in turn

local mode, n = "uniform", 100000
local cdf = {}

function init(args)
  mode = args[1] or "uniform"
  n = tonumber(args[2] or "100000")
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
  if mode == "zipf" then
    local total = 0
    for k = 1, n do total = total + 1 / k; cdf[k] = total end
    for k = 1, n do cdf[k] = cdf[k] / total end
  elseif mode ~= "uniform" and mode ~= "hot" then
    error("unknown mode: " .. mode .. " (expected uniform, zipf or hot)")
  end
end

local turn = 0

local function pick()
  if mode == "uniform" then return math.random(n) end
  if mode == "hot" then turn = turn % 10 + 1; return turn end
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function request()
  return wrk.format("GET", "/users/" .. pick())
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"timeouts":%d,'
      .. '"p50_us":%.1f,"p99_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
