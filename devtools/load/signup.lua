-- A signup POST per request, each with an address of its own (EMAIL_PREFIX..thread..counter),
-- the CSRF cookie and the same token in the form (Django accepts the unmasked secret).
local token = "wrkCsrfSecret0123456789abcdefABC"  -- 32 characters: a valid CSRF secret
local threads, next_id = {}, 0
local fixed = os.getenv("SIGNUP_EMAIL")  -- set: every request signs up this one address
local run = os.getenv("RUN") or "r"

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
end

function request()
  counter = counter + 1
  local email = fixed or (run .. "-" .. id .. "-" .. counter .. "@load.example")
  local body = "csrfmiddlewaretoken=" .. token .. "&email=" .. email:gsub("@", "%%40")
    .. "&keywords=graph+neural+networks&frequency=daily&weekday=0&send_hour=8"
    .. "&timezone=Europe%2FParis&consent=on&website="
  return wrk.format("POST", "/", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "csrftoken=" .. token,
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("status %d: %d\n", status, n)) end
end
