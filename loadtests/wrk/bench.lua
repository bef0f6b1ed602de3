-- wrk script for the benchmarks: optional rotating paths, and a machine-readable summary.
--
--   wrk -t1 -c16 -d10s -s loadtests/wrk/bench.lua http://127.0.0.1:PORT/health/live
--   WRK_PATHS=ids.txt wrk ... -s loadtests/wrk/bench.lua -H 'Authorization: Bearer KEY' http://127.0.0.1:PORT
--
-- WRK_PATHS names a file with one request per line: `PATH` or `PATH<TAB>ETAG`. With an ETag
-- the request carries `If-None-Match: ETAG` (revalidation). Requests are pre-built in init()
-- and served round-robin, each thread starting at a different offset.
--
-- done() prints one line starting with `WRK_JSON ` followed by JSON: requests, seconds,
-- req/s, latency percentiles in ms (wrk's own histogram, microsecond resolution) and errors
-- (status = responses >= 400).

local paths_file = os.getenv("WRK_PATHS")
local entries = {}

if paths_file and paths_file ~= "" then
  for line in io.lines(paths_file) do
    local path, etag = line:match("^([^\t]+)\t?(.*)$")
    if path then
      entries[#entries + 1] = { path = path, etag = etag }
    end
  end
  assert(#entries > 0, "WRK_PATHS file is empty: " .. paths_file)
end

local prepared = {}
local position = 0
local thread_index = 0

function setup(thread)
  thread:set("thread_index", thread_index)
  thread_index = thread_index + 1
end

function init(args)
  for i, entry in ipairs(entries) do
    local headers = {}
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    if entry.etag ~= "" then
      headers["If-None-Match"] = entry.etag
    end
    prepared[i] = wrk.format("GET", entry.path, headers)
  end
  if #prepared > 0 then
    position = (thread_index * 7919) % #prepared
  end
end

if paths_file and paths_file ~= "" then
  function request()
    position = position % #prepared + 1
    return prepared[position]
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.3f, "p75_ms": %.3f, '
      .. '"p90_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(75) / 1000, latency:percentile(90) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
