-- wrk script: POST /v1/usage with batches of BATCH events (default 1000), every idempotency key unique across
-- threads and runs (RUN_ID), the API key from wrk's -H; with KIND=events, the batches are product events for
-- POST /v1/events (feature.used by 100 users). Any answer other than 202 with every event accepted counts as bad;
-- done() prints "bad <n>" and "events <n>" for bench/metering.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local batch = tonumber(os.getenv("BATCH") or "1000")
local run = os.getenv("RUN_ID") or tostring(os.time())
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  bad = 0
  accepted = 0
  ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if os.getenv("KIND") == "events" then
    prefix = '{"type":"feature.used","user_id":"user-'
    middle = '","timestamp":"' .. ts .. '","idempotency_key":"' .. run .. '-' .. tid .. '-'
    suffix = '","properties":{"feature":"export"}}'
    modulo = 100
  else
    prefix = '{"metric":"api.calls","quantity":'
    middle = ',"timestamp":"' .. ts .. '","idempotency_key":"' .. run .. '-' .. tid .. '-'
    suffix = '","properties":{"region":"eu"}}'
    modulo = 10
  end
end

request = function()
  n = n + 1
  local parts = {}
  for j = 1, batch do
    parts[j] = prefix .. (j % modulo + 1) .. middle .. n .. '-' .. j .. suffix
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

response = function(status, headers, body)
  if status == 202 and string.find(body, '"accepted":' .. batch, 1, true) then
    accepted = accepted + batch
  else
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local b, a = 0, 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    a = a + t:get("accepted")
  end
  io.write(string.format("bad %d\nevents %d\n", b, a))
end
