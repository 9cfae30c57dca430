"""The quota counters on their stores: SQLite, PostgreSQL, Redis (R-Q-1).

The same behaviour on every backend, with an injected clock: ranks within a window,
window edges, per-key isolation, exactness under concurrent hits, garbage collection;
then fail-closed behaviour when the store is locked, unreachable or closed.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psycopg
import pytest
from redis.asyncio import Redis

from ensu.errors import CounterUnavailable
from ensu.gateway.quota.counter import WINDOW_SECONDS, CounterStoreError, QuotaCheck, QuotaCounter
from ensu.gateway.quota.postgresql import APPLICATION_NAME, PostgresCounter
from ensu.gateway.quota.redis import CLIENT_NAME, RedisCounter
from ensu.gateway.quota.sqlite import SQLiteCounter
from tests.conftest import REDIS_URL, require_service
from tests.unit.gateway.test_quota import FakeAttempt, Stores, view

pytestmark = pytest.mark.anyio
MINUTE = 29_000_000
START = MINUTE * WINDOW_SECONDS


async def _flush_redis(prefix: str) -> None:
    """Delete this test's keys only (db 15 may be shared)."""
    client = Redis.from_url(REDIS_URL)
    try:
        async for name in client.scan_iter(match=f"{prefix}*"):
            await client.delete(name)
    finally:
        await client.aclose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
async def counter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QuotaCounter]:
    """A counter on each backend, on a store of its own (a file, unique keys or prefix)."""
    built: QuotaCounter
    if request.param == "sqlite":
        built = SQLiteCounter(tmp_path / "quota.db")
    elif request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        built = PostgresCounter.from_url(url)
    else:
        require_service("Redis", REDIS_URL)
        prefix = f"ensu-test-{secrets.token_hex(4)}:"
        built = RedisCounter.from_url(REDIS_URL, prefix=prefix)
    try:
        yield built
    finally:
        await built.aclose()
        if isinstance(built, RedisCounter):
            await _flush_redis(built.prefix)


def key() -> str:
    """A key no other test uses (the PostgreSQL database lives for the whole session)."""
    return f"TS-{secrets.token_hex(6)}"


async def test_ranks_remaining_and_refusal(counter: QuotaCounter) -> None:
    """R-Q-1: with a limit of 3, calls 1-3 pass (2, 1, 0 remaining), the 4th is refused
    with the seconds left in the window."""
    name, at = key(), START + 20.4
    decisions = [await counter.hit(key=name, limit=3, now=at) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after == 40
    assert {d.reset_seconds for d in decisions} == {40}


async def test_peek_reads_without_counting(counter: QuotaCounter) -> None:
    """A refusal before the quota check reads its téléservice's window (the RateLimit-*
    fields) without counting a hit: an unseen key has the full quota, peeks change
    nothing, and the next hit has the rank it would have had."""
    name, at = key(), START + 20.4
    fresh = await counter.peek(key=name, limit=3, now=at)
    assert (fresh.remaining, fresh.reset_seconds) == (3, 40)
    await counter.hit(key=name, limit=3, now=at)
    peeks = [await counter.peek(key=name, limit=3, now=at) for _ in range(3)]
    assert [p.remaining for p in peeks] == [2, 2, 2]
    assert (await counter.hit(key=name, limit=3, now=at)).remaining == 1
    assert (await counter.peek(key=name, limit=3, now=at + WINDOW_SECONDS)).remaining == 3


async def test_window_edge(counter: QuotaCounter) -> None:
    """59.999 s counts in the window; 60.000 s starts a new one with the full quota."""
    name = key()
    for _ in range(2):
        await counter.hit(key=name, limit=2, now=START + 59.999)
    refused = await counter.hit(key=name, limit=2, now=START + 59.999)
    assert (refused.allowed, refused.retry_after) == (False, 1)
    fresh = await counter.hit(key=name, limit=2, now=START + 60.0)
    assert (fresh.allowed, fresh.remaining, fresh.reset_seconds) == (True, 1, 60)


async def test_keys_are_isolated(counter: QuotaCounter) -> None:
    first, second = key(), key()
    for _ in range(3):
        await counter.hit(key=first, limit=2, now=START)
    decision = await counter.hit(key=second, limit=2, now=START)
    assert (decision.allowed, decision.remaining) == (True, 1)


async def test_concurrent_hits_are_exact(counter: QuotaCounter) -> None:
    """200 concurrent hits against a limit of 50: exactly 50 pass (never one more)."""
    name, allowed = key(), []

    async def one(index: int) -> None:
        decision = await counter.hit(key=name, limit=50, now=START + index * 0.1)
        allowed.append(decision.allowed)

    async with anyio.create_task_group() as group:
        for index in range(200):
            group.start_soon(one, index)
    assert allowed.count(True) == 50


async def test_old_windows_are_collected(counter: QuotaCounter) -> None:
    """A window two minutes back is gone once a later window is hit (the previous one is
    kept for late requests): counting it again starts from one."""
    name = key()
    for _ in range(3):
        await counter.hit(key=name, limit=10, now=START)
    await counter.hit(key=name, limit=10, now=START + 60.0)
    kept = await counter.hit(key=name, limit=10, now=START)
    assert kept.remaining == 6  # the 4th hit: the previous window is kept
    await counter.hit(key=name, limit=10, now=START + 120.0)
    if isinstance(counter, RedisCounter):
        # Redis forgets by expiry: every key expires within two windows.
        client = counter.client
        ttl = await client.ttl(f"{counter.prefix}{name}:{MINUTE}")
        assert 0 < ttl <= 2 * WINDOW_SECONDS
    else:
        gone = await counter.hit(key=name, limit=10, now=START)
        assert gone.remaining == 9


@pytest.mark.postgres
async def test_postgresql_counters_do_not_wait_for_the_wal_flush(postgres_database: str) -> None:
    """The counters' own connections only (see ``PostgresCounter.from_url``)."""
    connection = await PostgresCounter.from_url(postgres_database)._connect()
    try:
        cursor = await connection.execute("SHOW synchronous_commit")
        setting: object = (await cursor.fetchone() or (None,))[0]
        assert setting == "off"
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_postgresql_connection_lost_then_replaced(postgres_database: str) -> None:
    """A server restart kills the pooled connections: the next hit fails closed, the
    broken connection is dropped, and the hit after it counts on a new one."""
    counter = PostgresCounter.from_url(postgres_database)
    name = key()
    try:
        assert (await counter.hit(key=name, limit=10, now=START)).remaining == 9
        conninfo = counter.conninfo
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            )
            assert await cursor.fetchall() == [(True,)]  # the counter's one connection
        with pytest.raises(CounterStoreError):
            await counter.hit(key=name, limit=10, now=START)
        assert (await counter.hit(key=name, limit=10, now=START)).remaining == 8
    finally:
        await counter.aclose()


@pytest.mark.redis
async def test_redis_connection_lost_is_retried_once() -> None:
    """A killed connection (a Redis restart) costs no refusal: the hit is retried at once
    on a new connection."""
    require_service("Redis", REDIS_URL)
    counter = RedisCounter.from_url(REDIS_URL, prefix=f"ensu-test-{secrets.token_hex(4)}:")
    name = key()
    try:
        assert (await counter.hit(key=name, limit=10, now=START)).remaining == 9
        ours = [c for c in await counter.client.client_list() if c.get("name") == CLIENT_NAME]
        assert ours  # (client_list itself runs on one of them)
        for client in ours:
            await counter.client.client_kill_filter(_id=client["id"], skipme=False)
        assert (await counter.hit(key=name, limit=10, now=START)).remaining == 8
    finally:
        await counter.aclose()
        await _flush_redis(counter.prefix)


# -- failing closed ----------------------------------------------------------------------


def closed_port() -> int:
    """A local port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_redis_unreachable_fails_closed_quickly() -> None:
    """R-Q-1: Redis down is 503 930003 at once, not a call let through. The client
    retries once without backoff (redis-py's default backs off through 10 retries, about
    2 s in all), so the refusal comes from the store, well within the check's bound."""
    counter = RedisCounter.from_url(f"redis://127.0.0.1:{closed_port()}/0", prefix="x:")
    try:
        started = time.monotonic()
        with pytest.raises(CounterStoreError, match=r"127\.0\.0\.1"):
            await counter.hit(key="TS-A", limit=10, now=START)
        assert time.monotonic() - started < 1.0  # milliseconds in fact; 1 s for slow CI
        attempt = FakeAttempt(START, view("TS-A", 10), Stores(counter))
        with pytest.raises(CounterUnavailable) as caught:
            await QuotaCheck()(attempt)
        assert caught.value.reason == "quota_counter_unavailable"  # not the timeout
        assert attempt.quota is None
    finally:
        await counter.aclose()


async def test_postgresql_unreachable_fails_closed() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nothing"
    counter = PostgresCounter.from_url(url)
    try:
        with pytest.raises(CounterStoreError):
            await counter.hit(key="TS-A", limit=10, now=START)
    finally:
        await counter.aclose()


async def test_sqlite_locked_fails_closed_then_recovers(tmp_path: Path) -> None:
    """A quota file locked by another process: SQLITE_BUSY after the busy timeout is a
    store error (fail closed); once the lock is gone, hits count again."""
    path = tmp_path / "quota.db"
    counter = SQLiteCounter(path, busy_timeout_ms=50)
    try:
        assert (await counter.hit(key="TS-A", limit=10, now=START)).remaining == 9
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(CounterStoreError, match="locked"):
                await counter.hit(key="TS-A", limit=10, now=START)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert (await counter.hit(key="TS-A", limit=10, now=START)).remaining == 8
    finally:
        await counter.aclose()


async def test_sqlite_unusable_file_fails_closed(tmp_path: Path) -> None:
    """A path that cannot hold a database (here a directory) is a store error."""
    folder = tmp_path / "quota.db"
    folder.mkdir()
    counter = SQLiteCounter(folder)
    try:
        with pytest.raises(CounterStoreError):
            await counter.hit(key="TS-A", limit=10, now=START)
    finally:
        await counter.aclose()


async def test_sqlite_inline_hit_waits_for_another_process_lock(tmp_path: Path) -> None:
    """When another process holds the quota file's lock, even at the
    first (inline) open, the hit waits for it off the loop instead of failing 930003."""
    path = tmp_path / "quota.db"
    with sqlite3.connect(path) as first:  # a WAL file whose table is not made yet
        first.execute("PRAGMA journal_mode=WAL")
    counter = SQLiteCounter(path, busy_timeout_ms=5000)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        hit = asyncio.create_task(counter.hit(key="k", limit=10, now=START))
        await asyncio.sleep(0.2)
        assert not hit.done()  # waiting for the lock, not failed
        other.execute("ROLLBACK")
        decision = await hit
        assert decision.remaining == 9
    finally:
        other.close()
        await counter.aclose()
