-- wrk script: token endpoint scenarios (POST /token, POST /introspect).
--
-- Configuration (environment; the fixture path may also be given as the first script
-- argument: `wrk ... -s bench/token.lua http://ADDR/token -- fixtures.tsv`):
--
--   TOKEN_BODY           form-urlencoded request body. With fixtures it is a template in
--                        which "{A}" is replaced by the line's client assertion.
--   TOKEN_FIXTURES       optional file of `assertion<TAB>dpop_proof` lines, as written by
--                        `patron agent bench-fixtures`. Each request takes the next line:
--                        the assertion goes into the body, the proof into the DPoP header.
--                        Lines are single use (the server refuses replayed jti). A line
--                        with nothing after the TAB sends no DPoP header (the code and
--                        refresh fixtures of bench/code_fixtures.py).
--   TOKEN_AUTHORIZATION  optional Authorization header value (e.g. "Basic ...").
--   TOKEN_RATE, TOKEN_CONNS
--                        optional pacing: aim for TOKEN_RATE requests/s in total over
--                        TOKEN_CONNS connections. Each connection waits an exponentially
--                        distributed think time (mean TOKEN_CONNS / TOKEN_RATE s) before
--                        each request, so arrivals are roughly Poisson and the server is
--                        loaded but not saturated; the achieved rate is a little lower than
--                        the target (the think time comes on top of the response time).
--                        Without them every connection sends its next request at once.
--
-- Without fixtures every request is the same (static body and headers).
--
-- When the fixtures run out the thread stops (wrk.thread:stop()) and done() prints
-- "Fixtures exhausted: yes". wrk still divides by the full duration, so req/s of such a run
-- is understated; generate more lines than the run can use (bench/tokens.sh does).
-- The few requests built after the last line (sent before the stop takes effect) repeat
-- the last line and are refused as replays; they show up in the non-200 count.
--
-- wrk counts only statuses >= 400 as "Non-2xx or 3xx responses". response() below counts
-- every status other than 200 and done() prints "Non-200 responses: N", a per-status
-- breakdown and the first error body.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread state (wrk runs init/request/response in each thread's own Lua state).
local fh = nil            -- fixture file handle
local body_pre, body_post -- template split at "{A}"
local static_req = nil
local last_req = nil

local mean_think_ms = nil -- pacing (see TOKEN_RATE)

function init(args)
  local rate = tonumber(os.getenv("TOKEN_RATE") or "")
  local conns = tonumber(os.getenv("TOKEN_CONNS") or "")
  if rate and rate > 0 and conns and conns > 0 then
    mean_think_ms = 1000 * conns / rate
    math.randomseed(os.time())
  end
  non200 = 0
  statuses = {}
  first_error = nil
  used = 0          -- fixture lines consumed
  exhausted = 0     -- 1 once the fixture file ran out
  after_end = 0     -- requests built after the fixtures ran out

  local template = os.getenv("TOKEN_BODY") or ""
  local auth = os.getenv("TOKEN_AUTHORIZATION")
  if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
  end

  local path = args[1]
  if path == nil or path == "" then
    path = os.getenv("TOKEN_FIXTURES")
  end
  if path ~= nil and path ~= "" then
    local f, e = io.open(path, "r")
    if not f then
      error("token.lua: cannot open fixtures " .. path .. ": " .. tostring(e))
    end
    fh = f
    local s, t = string.find(template, "{A}", 1, true)
    if not s then
      error("token.lua: TOKEN_BODY has no {A} placeholder but fixtures were given")
    end
    body_pre = string.sub(template, 1, s - 1)
    body_post = string.sub(template, t + 1)
  else
    static_req = wrk.format(nil, nil, nil, template)
  end
end

if os.getenv("TOKEN_RATE") and os.getenv("TOKEN_RATE") ~= "" then
  function delay()
    if not mean_think_ms then return 0 end
    return math.floor(-mean_think_ms * math.log(1 - math.random()))
  end
end

function request()
  if static_req then
    return static_req
  end
  local line = fh and fh:read("*l")
  if line == nil or line == "" then
    if exhausted == 0 then
      exhausted = 1
      if fh then fh:close(); fh = nil end
      wrk.thread:stop()
    end
    after_end = after_end + 1
    return last_req or wrk.format(nil, nil, nil, "")
  end
  local tab = string.find(line, "\t", 1, true)
  if not tab then
    error("token.lua: fixture line " .. (used + 1) .. " has no TAB")
  end
  used = used + 1
  local proof = string.sub(line, tab + 1)
  if proof == "" then
    wrk.headers["DPoP"] = nil
  else
    wrk.headers["DPoP"] = proof
  end
  last_req = wrk.format(nil, nil, nil, body_pre .. string.sub(line, 1, tab - 1) .. body_post)
  return last_req
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    if first_error == nil then
      first_error = key .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total, used_total, after_total, ex = 0, 0, 0, false
  local by_status = {}
  local sample = nil
  for _, t in ipairs(threads) do
    total = total + (t:get("non200") or 0)
    used_total = used_total + (t:get("used") or 0)
    after_total = after_total + (t:get("after_end") or 0)
    if (t:get("exhausted") or 0) ~= 0 then ex = true end
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do
        by_status[k] = (by_status[k] or 0) + v
      end
    end
    sample = sample or t:get("first_error")
  end
  io.write(string.format("Non-200 responses: %d\n", total))
  for k, v in pairs(by_status) do
    io.write(string.format("  status %s: %d\n", k, v))
  end
  if sample then
    io.write("  first non-200: " .. sample .. "\n")
  end
  io.write(string.format("Fixture lines used: %d\n", used_total))
  if ex then
    io.write(string.format(
      "Fixtures exhausted: yes (thread stopped early; %d request(s) built after the last line; req/s understated)\n",
      after_total))
  else
    io.write("Fixtures exhausted: no\n")
  end
end
