-- wrk script: POST a Generic Pay Connector charge with a unique transaction_id per request.
--
--   wrk -t1 -c50 -d10s --timeout 10s -s benchmarks/charge.lua http://127.0.0.1:8000/ \
--       -- [run-prefix] [body-head] [body-tail]
--
-- The body is body-head .. transaction_id .. body-tail (load_charge.py passes the same pre-built
-- JSON its Python client sends); the transaction_id is <run-prefix>-t<thread>-<10-digit counter>.
-- done() prints one machine-readable line, WRK_RESULT key=value ..., for load_charge.py.

local threads = {}
local counter = 0
local prefix = "wrk-" .. os.time()
local head = '{"method":"charge","transaction_id":"'
local tail = '","cardnumber":"4111111111111111","cvv":"123","amount":"10.00",'
    .. '"currency_code":"USD","expiry_month":"08","expiry_year":"'
    .. string.format("%02d", (tonumber(os.date("%y")) + 3) % 100)
    .. '","description":"pizza","postal_code":"94111","parameters":'
    .. '{"customer_defined_key_1":"customer_defined_value_1",'
    .. '"customer_defined_key_2":"customer_defined_value_2"}}'
local headers = {["Content-Type"] = "application/json", ["User-Agent"] = "TwilioProxy/1.1"}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  if args[1] then prefix = args[1] end
  if args[2] then head = args[2] end
  if args[3] then tail = args[3] end
  prefix = prefix .. "-t" .. thread_number .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, head .. prefix .. string.format("%010d", counter) .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d "
      .. "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
