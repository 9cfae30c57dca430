"""The quota of the access chain: calls per téléservice per minute (R-Q-1).

Fixed one-minute windows aligned on the minute (window = ``floor(now / 60)``), counted in
a store shared by every worker process, so the count is exact: each hit increments the
window's counter atomically and reads the new value in the same step, so the n-th call
of a window sees exactly ``n`` and a window never accepts one call more than the limit.
Refused calls are counted too (the value is then "attempts in this window"); that costs
nothing in exactness and keeps every backend to one statement.

Backends (:class:`QuotaCounter`), chosen by ``settings.quota_backend``
(:func:`ensu.gateway.quota.backends.make_counter`):

- ``sqlite`` (embedded default): one UPSERT … RETURNING on ``var/quota.db``;
  exact across the processes of one host (:mod:`ensu.gateway.quota.sqlite`).
- ``postgresql``: the same statement on the main database; exact across hosts
  (:mod:`ensu.gateway.quota.postgresql`).
- ``redis`` (scale-out): one Lua script, one round trip (:mod:`ensu.gateway.quota.redis`).

The check fails closed: a store that errors or answers later than
:data:`COUNTER_TIMEOUT_SECONDS` refuses the call with 503 930003 rather than let it go
uncounted.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ensu.errors import CounterUnavailable, QuotaExceeded

if TYPE_CHECKING:  # the counters' processes need not import the consumers' models
    from ensu.consumers.schemas import TeleserviceView

WINDOW_SECONDS = 60
#: How long a hit may take before the call is refused (fail closed, R-Q-1). The wait
#: includes the event loop's own queueing: at 0.25 s a saturated but healthy instance
#: refused some calls with 930003 (the bench's bench), so the bound is one second.
COUNTER_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """The outcome of one hit: what the ``RateLimit-*`` headers and a 429 say."""

    allowed: bool
    limit: int
    remaining: int
    #: Whole seconds until the window ends, rounded up, so at least 1.
    reset_seconds: int

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait when refused: retrying then lands in the next window."""
        return None if self.allowed else self.reset_seconds


def window_of(now: float) -> int:
    """The window (the Unix minute) that holds the instant ``now``."""
    return math.floor(now / WINDOW_SECONDS)


def decide(*, count: int, limit: int, now: float) -> QuotaDecision:
    """The decision for the ``count``-th hit of the window of ``now`` (count >= 1)."""
    window_end = (window_of(now) + 1) * WINDOW_SECONDS
    return QuotaDecision(
        allowed=count <= limit,
        limit=limit,
        remaining=max(0, limit - count),
        reset_seconds=max(1, math.ceil(window_end - now)),
    )


class CounterStoreError(Exception):
    """The counter store failed (unreachable, locked, refused the statement)."""


class QuotaCounter(Protocol):
    """An exact, shared counter of hits per key and one-minute window."""

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        """Count one hit for ``key`` in the window of ``now``; raise CounterStoreError."""
        ...

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        """The window's state for ``key`` *without* counting a hit (the ``RateLimit-*``
        fields of a call refused before the quota check); raise CounterStoreError."""
        ...

    async def aclose(self) -> None:
        """Release the connections (the app's shutdown)."""
        ...


class PurgeSchedule:
    """When to delete the windows that are over: once per new window seen by a process.

    The previous window is kept: a request whose clock was read just before the minute
    turned may still hit it, and deleting its row would restart that count from zero.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def due(self, window: int) -> int | None:
        """The first window to keep if a purge is due at ``window``, else None."""
        if self._last is not None and window <= self._last:
            return None
        self._last = window
        return window - 1


class QuotaAuthority(Protocol):
    """What the quota check needs from the gateway's stores."""

    @property
    def quota_counter(self) -> QuotaCounter: ...


class QuotaAttempt(Protocol):
    """What the quota check reads and writes on the chain's ``Attempt``."""

    @property
    def now(self) -> float: ...

    @property
    def teleservice(self) -> TeleserviceView | None: ...

    @property
    def authority(self) -> QuotaAuthority: ...

    quota: QuotaDecision | None


class QuotaCheck:
    """R-Q-1: at most ``quota_per_minute`` calls per téléservice in each minute.

    Counts by ``ID_Teleservice`` (the use case, R-GW-3). The decision is kept on the
    attempt, refused or not, for the ``RateLimit-*`` headers of the response; a refusal
    is 429 900804 with ``Retry-After``; a failing counter store is 503 930003.
    """

    name = "quota"

    def __init__(self, *, timeout: float = COUNTER_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout

    async def __call__(self, attempt: QuotaAttempt) -> None:
        view = attempt.teleservice
        assert view is not None  # the téléservice check ran before
        counter = attempt.authority.quota_counter
        key, limit, now = view.id_teleservice, view.quota_per_minute, attempt.now
        try:
            # An embedded counter may count at once, in this thread, with no timer:
            # ``try_hit`` (optional) answers a decision, or None to go through ``hit``.
            try_hit = getattr(counter, "try_hit", None)
            decision = try_hit(key=key, limit=limit, now=now) if try_hit else None
            if decision is None:
                async with asyncio.timeout(self.timeout):
                    decision = await counter.hit(key=key, limit=limit, now=now)
        except TimeoutError:
            raise CounterUnavailable(reason="quota_counter_timeout") from None
        except CounterStoreError:
            raise CounterUnavailable(reason="quota_counter_unavailable") from None
        attempt.quota = decision
        if not decision.allowed:
            raise QuotaExceeded(decision.reset_seconds)


async def peek(
    counter: QuotaCounter,
    *,
    key: str,
    limit: int,
    now: float,
    bound: float = COUNTER_TIMEOUT_SECONDS,
) -> QuotaDecision | None:
    """``counter.peek`` bounded by ``bound`` seconds; None when the store fails or is
    late (the fields then say nothing was counted: :mod:`ensu.gateway.stamps`)."""
    try:
        async with asyncio.timeout(bound):
            return await counter.peek(key=key, limit=limit, now=now)
    except (TimeoutError, CounterStoreError):
        return None


def ratelimit_headers(decision: QuotaDecision) -> list[tuple[bytes, bytes]]:
    """The contract's ``RateLimit-Limit``, ``-Remaining``, ``-Reset`` (seconds), as ASGI
    header pairs: the call's decision (429s included) or a peek of the counter."""
    return [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(decision.reset_seconds).encode()),
    ]
