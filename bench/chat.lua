-- wrk script: POST the JSON body read from the file named by $BENCH_BODY_FILE
-- (headers come from wrk's -H flags) and print one JSON line of results at the
-- end, latencies in microseconds, for bench/run.py to read.
local body_file = os.getenv("BENCH_BODY_FILE")
local f = assert(io.open(body_file, "rb"), "BENCH_BODY_FILE is not readable")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local non_2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
