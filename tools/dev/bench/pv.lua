-- SPDX-License-Identifier: Apache-2.0
-- pv.lua: wrk script for the piivault benchmark.
-- wrk ... -s pv.lua -- MODE N KEY [FILE]
--   echo, tokenize   one record of email, phone, name per request
--   batch            N records per request (email, phone, name)
--   plain            N records per request, no indexed field
--   detok            N random tokens from FILE per request, purpose service
--   lookup           one random email from FILE per request
--   probe            GET of a route that does not exist: a 404, which the
--                    audit rule still logs durably (the cheapest such request)
-- Every request carries fresh values; done() prints one JSON line.

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local mode, n, items, counter, prefix = "echo", 1, {}, 0, ""

function init(args)
  mode = args[1] or "echo"
  n = tonumber(args[2] or "1")
  if args[3] and args[3] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[3]
  end
  wrk.headers["Content-Type"] = "application/json"
  if args[4] then
    for line in io.lines(args[4]) do items[#items + 1] = line end
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
  prefix = tostring(tid or 0) .. "r" .. tostring(math.random(1, 1000000000))
end

local function person(i)
  return string.format(
    '{"fields":{"email":"u%s.%d@bench.example","phone":"+1 555 %07d",' ..
    '"name":"Bench User %d"}}', prefix, i, i % 10000000, i)
end

local function plain(i)
  return string.format(
    '{"fields":{"name":"Bench User %s %d","city":"City %d",' ..
    '"notes":"customer since %d"}}', prefix, i, i % 997, i)
end

function request()
  counter = counter + 1
  if mode == "echo" or mode == "tokenize" then
    local path = mode == "echo" and "/" or "/v1/records"
    return wrk.format("POST", path, nil, person(counter))
  elseif mode == "batch" or mode == "plain" then
    local parts = {}
    for j = 1, n do
      local i = counter * n + j
      parts[j] = mode == "batch" and person(i) or plain(i)
    end
    return wrk.format("POST", "/v1/records/batch", nil,
      '{"records":[' .. table.concat(parts, ",") .. ']}')
  elseif mode == "detok" then
    local parts = {}
    for j = 1, n do
      parts[j] = '"' .. items[math.random(1, #items)] .. '"'
    end
    return wrk.format("POST", "/v1/detokenize", nil,
      '{"tokens":[' .. table.concat(parts, ",") .. '],"purpose":"service"}')
  elseif mode == "probe" then
    return wrk.format("GET", "/v1/no-such-route", nil, nil)
  else
    return wrk.format("POST", "/v1/lookup", nil,
      '{"field":"email","value":"' .. items[math.random(1, #items)] ..
      '","purpose":"service"}')
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  -- done() runs in wrk's main Lua state, which init() never saw: no mode.
  io.write(string.format(
    'BENCH {"requests":%d,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"errors":%d}\n',
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
