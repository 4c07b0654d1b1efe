-- wrk script of the Gatehouse load benchmark (bench/run.sh).
--
-- Adds the scenario's credential header from the environment, so cookies and
-- tokens never appear on a command line, optionally paces the requests,
-- counts every response whose status is not 2xx, and prints one
-- machine-readable summary line that loadbench parses.

local name = os.getenv("BENCH_HEADER_NAME")
local value = os.getenv("BENCH_HEADER_VALUE")
if name and name ~= "" then
  wrk.headers[name] = value
end

-- BENCH_DELAY_MS, if set, makes every connection wait that long before each
-- request: an offered load of about connections / delay, the same for both
-- proxies, to compare latency at equal load instead of at saturation.
local wait = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if wait and wait > 0 then
  function delay()
    return wait
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
    e.connect, e.read, e.write, e.timeout, e.status))
end
