"""The provider's sending rate, kept across every worker on every host: a token bucket in Redis.

``reserve()`` takes one token and says how long to wait before sending; tokens refill at
``DIGEST_SEND_PER_SECOND`` up to ``DIGEST_SEND_BURST``. The bucket lives in one Redis key and
is updated by a Lua script with Redis's own clock, so workers never race or disagree on time.
A token taken ahead of time is a reservation (the count goes below zero): every sender waits
its turn instead of polling. With no rate set, or no Redis (``make demo``), nothing waits.
"""

from functools import cache

import redis
from django.conf import settings

KEY = "paperboy:send-bucket"
RESERVE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


@cache
def _script(url: str) -> "redis.commands.core.Script":
    return redis.Redis.from_url(url).register_script(RESERVE)


def reserve() -> float:
    """Take one send token; the seconds to wait before using it (0 when one was free)."""
    rate = settings.DIGEST_SEND_PER_SECOND
    if not rate or not settings.REDIS_URL:
        return 0.0
    burst = settings.DIGEST_SEND_BURST or rate
    return float(_script(settings.REDIS_URL)(keys=[KEY], args=[rate, burst]))
