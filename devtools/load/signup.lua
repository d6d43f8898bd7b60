-- A signup POST per request, each with an address of its own (RUN-thread-counter@load.example),
-- the CSRF cookie and the same token in the form (Django accepts the unmasked secret).
-- RATE=50 THREADS=2 (wrk's -t): 50 requests a second in all, on a fixed schedule; unset: as
-- fast as the connections go.
local token = "wrkCsrfSecret0123456789abcdefABC"  -- 32 characters: a valid CSRF secret
local threads, next_id = {}, 0
local fixed = os.getenv("SIGNUP_EMAIL")  -- set: every request signs up this one address
local run = os.getenv("RUN") or "r"
local rate = tonumber(os.getenv("RATE") or "0")
local interval = rate > 0 and 1000 * tonumber(os.getenv("THREADS") or "2") / rate or 0

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } load_timespec;
  int clock_gettime(int clock, load_timespec *now);
]]
local clock = ffi.new("load_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local next_slot = nil

if interval > 0 then
  -- wrk asks before each request how long to wait: each request takes the thread's next slot.
  function delay()
    local now = now_ms()
    local slot = math.max(next_slot or now, now)
    next_slot = slot + interval
    return slot - now
  end
end

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
