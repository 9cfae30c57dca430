"""The quota's arithmetic, check and configuration (R-Q-1), with an injected clock.

Windows are Unix minutes: the edges are tested at 59.999 s against 60.000 s; the store
behind the counter is tested in ``test_quota_backends.py``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ensu.config import Environment, Settings
from ensu.consumers.models import AuthMethod, TeleserviceStatus
from ensu.consumers.schemas import TeleserviceView
from ensu.errors import CounterUnavailable, QuotaExceeded
from ensu.gateway.quota.backends import backend_for, make_counter
from ensu.gateway.quota.counter import (
    WINDOW_SECONDS,
    CounterStoreError,
    PurgeSchedule,
    QuotaCheck,
    QuotaCounter,
    QuotaDecision,
    decide,
    ratelimit_headers,
    window_of,
)
from ensu.gateway.quota.postgresql import PostgresCounter
from ensu.gateway.quota.redis import RedisCounter
from ensu.gateway.quota.sqlite import SQLiteCounter

pytestmark = pytest.mark.anyio
MINUTE = 29_000_000  # a window far from today: the clock is always injected
START = MINUTE * WINDOW_SECONDS


# -- the arithmetic ----------------------------------------------------------------------


def test_window_edges() -> None:
    """R-Q-1: 59.999 s still belongs to the window, 60.000 s opens the next one."""
    assert window_of(START + 59.999) == MINUTE
    assert window_of(START + 60.0) == MINUTE + 1
    last = decide(count=1, limit=10, now=START + 59.999)
    first = decide(count=1, limit=10, now=START + 60.0)
    assert (last.reset_seconds, first.reset_seconds) == (1, 60)


def test_reset_is_rounded_up() -> None:
    """Waiting ``reset_seconds`` always lands in the next window, never before its start."""
    assert decide(count=1, limit=10, now=START).reset_seconds == 60
    assert decide(count=1, limit=10, now=START + 42.5).reset_seconds == 18
    assert decide(count=1, limit=10, now=START + 42.0).reset_seconds == 18


def test_limit_exactly_reached_then_refused() -> None:
    """R-Q-1: the limit-th call passes with nothing remaining; the next one is a 429."""
    at = START + 30.25
    reached = decide(count=500, limit=500, now=at)
    assert (reached.allowed, reached.remaining, reached.retry_after) == (True, 0, None)
    over = decide(count=501, limit=500, now=at)
    assert (over.allowed, over.remaining) == (False, 0)
    assert over.retry_after == over.reset_seconds == 30
    assert decide(count=1, limit=500, now=at).remaining == 499


@given(
    offset=st.floats(min_value=0, max_value=WINDOW_SECONDS, exclude_max=True),
    count=st.integers(min_value=1, max_value=2000),
    limit=st.integers(min_value=1, max_value=1000),
)
def test_decisions_are_consistent(offset: float, count: int, limit: int) -> None:
    """For any instant: 1 <= reset <= 60, now + reset reaches the next window (and not
    one second earlier), refused exactly above the limit."""
    now = START + offset
    decision = decide(count=count, limit=limit, now=now)
    window_end = (window_of(now) + 1) * WINDOW_SECONDS
    assert 1 <= decision.reset_seconds <= WINDOW_SECONDS
    assert now + decision.reset_seconds >= window_end
    assert now + decision.reset_seconds - 1 < window_end
    assert decision.allowed is (count <= limit)
    assert decision.remaining == max(0, limit - count)


def test_purge_schedule_keeps_the_previous_window() -> None:
    schedule = PurgeSchedule()
    assert schedule.due(MINUTE) == MINUTE - 1
    assert schedule.due(MINUTE) is None
    assert schedule.due(MINUTE - 1) is None  # a late request never triggers a purge
    assert schedule.due(MINUTE + 3) == MINUTE + 2


def test_ratelimit_headers() -> None:
    """CONTRACT: ``RateLimit-Limit``, ``-Remaining``, ``-Reset`` in seconds."""
    decision = QuotaDecision(allowed=False, limit=50, remaining=0, reset_seconds=7)
    assert ratelimit_headers(decision) == [
        (b"ratelimit-limit", b"50"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"7"),
    ]


# -- the check ---------------------------------------------------------------------------


class MemoryCounter:
    """An exact in-memory counter (one process): what the check sees of a store."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        self.counts[key, window_of(now)] += 1
        return decide(count=self.counts[key, window_of(now)], limit=limit, now=now)

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return decide(count=self.counts[key, window_of(now)], limit=limit, now=now)

    async def aclose(self) -> None:
        self.counts.clear()


class BrokenCounter:
    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        raise CounterStoreError("store down")

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        raise CounterStoreError("store down")

    async def aclose(self) -> None:
        return None


class HangingCounter:
    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        await anyio.Event().wait()  # never set: a store that does not answer
        raise AssertionError("unreachable")

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return await self.hit(key=key, limit=limit, now=now)

    async def aclose(self) -> None:
        return None


@dataclass
class Stores:
    quota_counter: QuotaCounter


@dataclass
class FakeAttempt:
    """The fields of the chain's ``Attempt`` that the quota check uses."""

    now: float
    teleservice: TeleserviceView | None
    authority: Stores
    quota: QuotaDecision | None = None


def view(id_teleservice: str, quota: int) -> TeleserviceView:
    day = dt.date(2024, 1, 1)
    return TeleserviceView(
        id_teleservice=id_teleservice,
        client_id=f"client-{id_teleservice}",
        name=id_teleservice,
        organisation_siret="73282932000074",
        organisation_name="Organisation",
        environment=Environment.SANDBOX,
        status=TeleserviceStatus.ACTIVE,
        valid_from=day,
        valid_until=None,
        families=frozenset(),
        codes=frozenset({"AMR"}),
        allowed_codes=frozenset({"AMR"}),
        period_start=day,
        period_end=day,
        networks=(),
        thumbprints=frozenset(),
        certificates=(),
        quota_per_minute=quota,
        auth_method=AuthMethod.TLS_CLIENT_AUTH,
        client_secret_hash=None,
        mention_information="",
        updated_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )


async def test_check_counts_per_teleservice_and_refuses_over_the_quota() -> None:
    """R-Q-1: the quota-th call passes, the next is 429 900804 with ``Retry-After``; the
    decision stays on the attempt either way (for the ``RateLimit-*`` headers); another
    téléservice has its own count."""
    stores = Stores(MemoryCounter())
    check = QuotaCheck()
    at = START + 15.5
    for expected_remaining in (2, 1, 0):
        attempt = FakeAttempt(at, view("TS-A", 3), stores)
        await check(attempt)
        assert attempt.quota is not None
        assert attempt.quota.remaining == expected_remaining
    refused = FakeAttempt(at, view("TS-A", 3), stores)
    with pytest.raises(QuotaExceeded) as caught:
        await check(refused)
    assert (caught.value.status, caught.value.code) == (429, "900804")
    assert caught.value.headers() == {"Retry-After": "45"}
    assert refused.quota == QuotaDecision(allowed=False, limit=3, remaining=0, reset_seconds=45)
    other = FakeAttempt(at, view("TS-B", 3), stores)
    await check(other)
    assert other.quota is not None
    assert other.quota.allowed
    next_window = FakeAttempt(START + 60.0, view("TS-A", 3), stores)
    await check(next_window)
    assert next_window.quota == QuotaDecision(True, 3, 2, 60)


async def test_check_fails_closed_when_the_store_fails() -> None:
    """R-Q-1, fail closed: a store error is 503 930003 with ``Retry-After``, no decision."""
    attempt = FakeAttempt(START, view("TS-A", 3), Stores(BrokenCounter()))
    with pytest.raises(CounterUnavailable) as caught:
        await QuotaCheck()(attempt)
    assert (caught.value.status, caught.value.code) == (503, "930003")
    assert caught.value.reason == "quota_counter_unavailable"
    assert "Retry-After" in caught.value.headers()
    assert attempt.quota is None


async def test_check_fails_closed_when_the_store_does_not_answer() -> None:
    """A store that hangs is cut off after the check's timeout: 503, not a stuck request."""
    attempt = FakeAttempt(START, view("TS-A", 3), Stores(HangingCounter()))
    with pytest.raises(CounterUnavailable) as caught:
        await QuotaCheck(timeout=0.05)(attempt)
    assert caught.value.reason == "quota_counter_timeout"


# -- configuration -----------------------------------------------------------------------


def test_backend_follows_the_settings(tmp_path: Path) -> None:
    """Derived: Redis when configured, else the database's kind; or set explicitly."""
    sqlite = Settings(var_dir=tmp_path)
    postgres = Settings(var_dir=tmp_path, database_url="postgresql+psycopg://h/db")
    redis = Settings(var_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    assert (backend_for(sqlite), backend_for(postgres), backend_for(redis)) == (
        "sqlite",
        "postgresql",
        "redis",
    )
    forced = Settings(var_dir=tmp_path, redis_url="redis://h", quota_backend="sqlite")
    assert backend_for(forced) == "sqlite"


async def test_make_counter_builds_the_backend_without_io(tmp_path: Path) -> None:
    sqlite = make_counter(Settings(var_dir=tmp_path))
    assert isinstance(sqlite, SQLiteCounter)
    assert sqlite.path == tmp_path / "quota.db"
    assert not sqlite.path.exists()  # nothing opened before the first hit
    redis = make_counter(
        Settings(var_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", environment="sandbox")
    )
    assert isinstance(redis, RedisCounter)
    assert redis.prefix == "ensu:sandbox:quota:"
    postgres = make_counter(Settings(var_dir=tmp_path, database_url="postgresql+psycopg://h/db"))
    assert isinstance(postgres, PostgresCounter)
    for counter in (sqlite, redis, postgres):
        await counter.aclose()


def test_make_counter_refuses_impossible_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ENSU_REDIS_URL"):
        make_counter(Settings(var_dir=tmp_path, quota_backend="redis"))
    with pytest.raises(ValueError, match="PostgreSQL"):
        make_counter(Settings(var_dir=tmp_path, quota_backend="postgresql"))


def test_reset_never_exceeds_the_window() -> None:
    # Just after the window opens, the whole window remains, rounded up: exactly 60.
    assert decide(count=1, limit=1, now=math.nextafter(START, math.inf)).reset_seconds == 60
