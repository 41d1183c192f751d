-- wrk script: open dynamic client registration (RFC 7591) at POST /register.
--
-- By default the client authenticates with private_key_jwt and carries an inline P-256
-- public key: the request measures JSON validation, the client-id/registration-token
-- generation and the durable (group-committed) insert. With the script argument
-- `client_secret_basic` (wrk ... -s register.lua URL -- client_secret_basic) it asks for a
-- client secret instead, which the server generates and stores as a keyed hash.
--
-- wrk itself only counts statuses >= 400 as "Non-2xx or 3xx responses". The response()
-- hook below counts every status other than 201 and prints "Non-201 responses: N" at
-- the end, plus a per-status breakdown when there are any.

wrk.method = "POST"
wrk.path = "/register"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
-- Generated once with python3 `cryptography` (public part only; nobody holds the
-- private key, which is fine: the benchmark never authenticates as the client).
wrk.body = '{"client_name":"bench agent",'
  .. '"grant_types":["client_credentials"],'
  .. '"response_types":[],'
  .. '"token_endpoint_auth_method":"private_key_jwt",'
  .. '"jwks":{"keys":[{"kty":"EC","crv":"P-256",'
  .. '"x":"OrBQELQzwCQKFicasc8EIHkxLrzWijXbI5KLCXKQqu8",'
  .. '"y":"4F5v4qitsI4KjscS1j6EpYaq1QOl_glvkvwazXwf6DA",'
  .. '"kid":"k1"}]},'
  .. '"dpop_bound_access_tokens":true}'

-- The same request for a client that authenticates with a secret the server issues.
local secret_body = '{"client_name":"bench agent",'
  .. '"grant_types":["client_credentials"],'
  .. '"response_types":[],'
  .. '"token_endpoint_auth_method":"client_secret_basic"}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- A seed per run: addresses must not repeat those of an earlier run on the same server.
  math.randomseed(os.time())
  -- wrk formats the request after init, so the body chosen here is the one sent.
  if args[1] == "client_secret_basic" then
    wrk.body = secret_body
  elseif args[1] ~= nil then
    error("register.lua: unknown argument " .. args[1] .. " (expected client_secret_basic)")
  end
  non201 = 0
  statuses = {}
  first_error = nil
end

-- Each request comes from its own address (X-Forwarded-For; the benchmark server trusts
-- 127.0.0.1 as a proxy): the same key registered again from the same address while still
-- pending renews that registration instead of adding one, and this benchmark measures new
-- registrations, as distinct agents make them.
function request()
  wrk.headers["X-Forwarded-For"] = string.format(
    "2001:db8:%x:%x:%x::1",
    math.random(0, 65535), math.random(0, 65535), math.random(0, 65535)
  )
  return wrk.format()
end

function response(status, headers, body)
  if status ~= 201 then
    non201 = non201 + 1
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    if first_error == nil then
      first_error = key .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total = 0
  local by_status = {}
  local sample = nil
  for _, t in ipairs(threads) do
    total = total + (t:get("non201") or 0)
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do
        by_status[k] = (by_status[k] or 0) + v
      end
    end
    sample = sample or t:get("first_error")
  end
  io.write(string.format("Non-201 responses: %d\n", total))
  for k, v in pairs(by_status) do
    io.write(string.format("  status %s: %d\n", k, v))
  end
  if sample then
    io.write("  first non-201: " .. sample .. "\n")
  end
end
