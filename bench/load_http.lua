-- wrk script for bench/load_http.py: POST ping jobs to /api/v1/jobs/ at a fixed rate.
--
--   wrk -t T -c C -d 60s -s bench/load_http.lua http://127.0.0.1:PORT -- RATE TOKEN1 TOKEN2 ...
--
-- RATE is requests per second over all threads. Plain wrk sends as fast as it can, so the
-- pacing is done here, wrk2-style: each thread keeps a schedule of send times (one every
-- T/RATE seconds, from its first request) and delay() holds a connection until the next
-- slot. A thread that fell behind sends at once until it is back on schedule, so the
-- achieved rate only drops below RATE when every connection is waiting on the server.
-- Latency is wrk's: from the moment a request is written to its response.
--
-- Request n goes to token n mod (number of tokens) and tier n mod 3; the JSON body is
-- {"job_type":"ping","payload":{"echo":"load-<thread>-<n>"},"tier":"..."}.
-- done() prints one "LOAD key value" line per figure for the Python side to parse.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clk_id, load_timespec *tp);
]])
local CLOCK_MONOTONIC = 1
local ts = ffi.new("load_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local TIERS = { "lite", "basic", "premium" }

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_index", thread_count)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local tokens = {}
local interval_ms = 0
local next_at = nil
local n = 0
counts = {} -- status code -> responses; read by done() through thread:get
sent = 0

function init(args)
  local rate = tonumber(args[1])
  if rate == nil or rate <= 0 or #args < 2 then
    error("usage: -- RATE TOKEN [TOKEN ...]")
  end
  for i = 2, #args do
    table.insert(tokens, args[i])
  end
  -- The main state's thread count is not visible here; load_http.py passes it as $WRK_THREADS.
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  interval_ms = 1000 * nthreads / rate
  n = (thread_index or 1) - 1 -- spread the rotation across threads
end

function delay()
  local now = now_ms()
  if next_at == nil then
    next_at = now
  end
  local wait = next_at - now
  next_at = next_at + interval_ms
  if wait <= 0 then
    return 0
  end
  return math.floor(wait + 0.5)
end

function request()
  n = n + 1
  sent = sent + 1
  local token = tokens[(n % #tokens) + 1]
  local tier = TIERS[(n % 3) + 1]
  local body = string.format(
    '{"job_type":"ping","payload":{"echo":"load-%d-%d"},"tier":"%s"}',
    thread_index or 1,
    n,
    tier
  )
  local headers = {
    ["Authorization"] = "Token " .. token,
    ["Content-Type"] = "application/json",
    -- What a TLS-terminating load balancer adds; without it DEBUG=0 redirects to https.
    ["X-Forwarded-Proto"] = "https",
  }
  return wrk.format("POST", "/api/v1/jobs/", headers, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  local sent_total = 0
  for _, thread in ipairs(threads) do
    sent_total = sent_total + (thread:get("sent") or 0)
    local c = thread:get("counts") or {}
    for status, k in pairs(c) do
      total[status] = (total[status] or 0) + k
    end
  end
  io.write(string.format("LOAD sent %d\n", sent_total))
  io.write(string.format("LOAD completed %d\n", summary.requests))
  io.write(string.format("LOAD duration_s %.3f\n", summary.duration / 1e6))
  for status, k in pairs(total) do
    io.write(string.format("LOAD status_%d %d\n", status, k))
  end
  local e = summary.errors
  io.write(string.format("LOAD errors_connect %d\nLOAD errors_read %d\n", e.connect, e.read))
  io.write(string.format("LOAD errors_write %d\nLOAD errors_timeout %d\n", e.write, e.timeout))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("LOAD latency_p%s_ms %.2f\n", tostring(p), latency:percentile(p) / 1000))
  end
  io.write(string.format("LOAD latency_max_ms %.2f\n", latency.max / 1000))
end
