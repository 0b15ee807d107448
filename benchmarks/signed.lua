-- wrk script: POST one pre-signed body again and again, with a new X-Webhook-Id each time.
--
--   wrk -t1 -c16 -d5s -s benchmarks/signed.lua 'http://127.0.0.1:8000/webhooks/stream/custom-commands?type=gif' \
--       -- BODY_FILE SIGNATURE API_KEY DEDUP ID_PREFIX
--
-- X-Signature covers only the body (not X-Webhook-Id), so one signature computed ahead of
-- time stays valid while the id changes: every request is a new delivery and the
-- idempotency store does real work (a claim and a completed answer per request).
-- DEDUP=0 sends no X-Webhook-Id at all (botkit then skips deduplication).
--
-- Pacing: with BENCH_DELAY_MS=n in the environment, each connection waits n ms after
-- every response before it sends the next request (wrk's delay() hook). With c
-- connections that caps the rate near c * 1000 / n requests per second, which is how
-- bench.py measures latency at a fixed fraction of the maximum rate (wrk has no
-- constant-rate mode; wrk2 is not packaged by Debian).
--
-- At the end it prints one line, BENCH-JSON {...}: requests, duration, errors and the
-- latency percentiles in microseconds.

local counter = 0
local dedup = true
local prefix = "bench"

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if pace > 0 then
  function delay()
    return pace
  end
end

local thread_ids = 0
function setup(thread)
  thread_ids = thread_ids + 1
  thread:set("tid", thread_ids)
end

function init(args)
  local path, signature, api_key = args[1], args[2], args[3]
  if not (path and signature and api_key) then
    error("usage: wrk ... -s signed.lua URL -- BODY_FILE SIGNATURE API_KEY [DEDUP] [ID_PREFIX]")
  end
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
  dedup = (args[4] or "1") ~= "0"
  prefix = (args[5] or "bench") .. "-" .. tostring(tid or 0) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Api-Key"] = api_key
  wrk.headers["X-Signature"] = signature
  wrk.headers["X-Webhook-Attempt"] = "1"
end

function request()
  counter = counter + 1
  if dedup then
    wrk.headers["X-Webhook-Id"] = prefix .. counter
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
