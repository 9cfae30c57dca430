"""In-process token buckets for the OAuth endpoints (RFC 6749 §10.10: credential guessing).

Client authentication is deliberately expensive (scrypt) and every refusal is journaled,
so the endpoints are throttled twice: per peer IP, before the body is read, and per
``client_id``, before any database or scrypt work. In-process is enough here: the limits
protect this process's CPU and database; the consumers' quota (R-Q-1) is elsewhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Defaults: 20 requests per second sustained, bursts of 40, per IP and per client.
RATE, BURST = 20.0, 40.0


class TokenBucket:
    """``take(key)`` returns 0 when a request may go, else the seconds to wait.

    At most ``max_keys`` buckets are kept: full buckets are forgotten first (they hold no
    information), and if that is not enough all are, so memory stays bounded whatever
    keys an attacker makes up.
    """

    def __init__(self, *, rate: float = RATE, burst: float = BURST, max_keys: int = 10_000):
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def _level(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - updated) * self.rate)

    def take(self, key: str, now: float) -> float:
        tokens = self._level(key, now)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = [key for key in self._buckets if self._level(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class Throttle:
    """The two buckets of the OAuth endpoints and their clock."""

    def __init__(
        self,
        *,
        rate: float = RATE,
        burst: float = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_ip = TokenBucket(rate=rate, burst=burst)
        self.per_client = TokenBucket(rate=rate, burst=burst)
        self.clock = clock

    def check_ip(self, address: str) -> int:
        """0, or the ``Retry-After`` seconds for this peer."""
        return _seconds(self.per_ip.take(address, self.clock()))

    def check_client(self, client_id: str) -> int:
        """0, or the ``Retry-After`` seconds for this client id."""
        return _seconds(self.per_client.take(client_id, self.clock()))


def _seconds(wait: float) -> int:
    return 0 if wait <= 0 else max(1, math.ceil(wait))
