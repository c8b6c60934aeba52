-- wrk script for the cases at scale (bench/cases.py, `lua="scale.lua"`): ids chosen at random over USERS users,
-- and when done one line BENCH_JSON {...} in the same form as bench/wrk/users.lua.
--
-- Usage: wrk -t2 -c32 -d10s -s bench/wrk/scale.lua http://127.0.0.1:8000 -- MODE USERS [S]
--   MODE uniform  GET /users/<id>, id uniform in 1..USERS
--        zipf     GET /users/<id>, id = rank drawn from Zipf(S) over 1..USERS (S defaults to 1.0; id 1 is hottest)
--        page     GET /users?limit=50&after=<uniform in 0..USERS-50>: a page of 50 at a random position

local mode, users, cdf

local function zipf_cdf(n, s)
  local weights, total = {}, 0
  for k = 1, n do
    local w = 1 / (k ^ s)
    total = total + w
    weights[k] = total
  end
  for k = 1, n do weights[k] = weights[k] / total end
  return weights
end

local function zipf_rank()
  local u, lo, hi = math.random(), 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function init(args)
  mode = args[1] or "uniform"
  users = tonumber(args[2] or "100000")
  if mode == "zipf" then
    cdf = zipf_cdf(users, tonumber(args[3] or "1.0"))
  elseif mode ~= "uniform" and mode ~= "page" then
    error("unknown mode: " .. mode .. " (expected uniform, zipf or page)")
  end
  -- Each wrk thread runs init in its own Lua state: seed each one differently.
  math.randomseed(os.time() + math.floor(os.clock() * 1000000) + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  if mode == "uniform" then
    return wrk.format("GET", "/users/" .. math.random(1, users))
  elseif mode == "zipf" then
    return wrk.format("GET", "/users/" .. zipf_rank())
  end
  return wrk.format("GET", "/users?limit=50&after=" .. math.random(0, users - 50))
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
