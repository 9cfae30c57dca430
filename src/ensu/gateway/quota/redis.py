"""Quota counters in Redis, shared by every process on every host (R-Q-1, scale-out).

One Lua script per hit, so one round trip (``EVALSHA``), and atomic: Redis runs a script
alone, so the INCR's value is the hit's rank in the window and the first hit of a window
sets the key's expiry in the same step (no key can be left without one)::

    local count = redis.call('INCR', KEYS[1])
    if count == 1 then
      redis.call('EXPIRE', KEYS[1], ARGV[1])
    end
    return count

The key names the window, ``{prefix}{key}:{minute}``, with the minute computed from the
application's clock like every backend, so ``RateLimit-Reset`` comes from ``now`` and the
key's TTL is not needed: it is only garbage collection, two windows long so that a host
whose clock lags a little still finds its window's key.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ensu.gateway.quota.counter import (
    COUNTER_TIMEOUT_SECONDS,
    WINDOW_SECONDS,
    CounterStoreError,
    QuotaDecision,
    decide,
    window_of,
)

SCRIPT = """\
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
#: How the counters' connections show in ``CLIENT LIST``.
CLIENT_NAME = "ensu-quota"


class RedisCounter:
    """A :class:`~ensu.gateway.quota.QuotaCounter` on a ``redis.asyncio`` client."""

    def __init__(self, client: Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.expiry_seconds = 2 * WINDOW_SECONDS
        self._script = client.register_script(SCRIPT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str,
        timeout: float = COUNTER_TIMEOUT_SECONDS,
        max_connections: int = 50,
    ) -> RedisCounter:
        """A client whose sockets give up after ``timeout`` and that retries once, at once:
        a pooled connection that a Redis restart closed is replaced within the same hit,
        while an unreachable Redis fails in milliseconds instead of backing off. A burst
        waits (up to ``timeout``) for one of ``max_connections`` instead of opening more."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            client_name=CLIENT_NAME,
        )
        return cls(Redis.from_pool(pool), prefix=prefix)

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        name = f"{self.prefix}{key}:{window_of(now)}"
        try:
            count = await self._script(keys=[name], args=[self.expiry_seconds])
        except (RedisError, OSError) as exc:
            raise CounterStoreError(f"quota store redis: {exc}") from exc
        return decide(count=int(count), limit=limit, now=now)

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        try:
            count = await self.client.get(f"{self.prefix}{key}:{window_of(now)}")
        except (RedisError, OSError) as exc:
            raise CounterStoreError(f"quota store redis: {exc}") from exc
        return decide(count=int(count or 0), limit=limit, now=now)

    async def aclose(self) -> None:
        await self.client.aclose()
