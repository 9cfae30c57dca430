"""Four worker processes share one quota store and never accept one call too many (R-Q-1).

The acceptance test of R-Q-1, at the counter level: four OS processes (spawned, as
uvicorn's workers are separate interpreters) hammer the same store at the same time;
three consumers send 1,000 calls each within a window, over several windows. Each
window must accept exactly the quota per consumer (never one more, at most 1 % fewer)
and every refusal must carry a valid ``Retry-After``. The windows are injected (``now``
values) and the processes start each window together (a barrier), so the test controls
the windows deterministically instead of waiting real minutes; the same on SQLite,
PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import secrets
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import anyio
import pytest

from ensu.gateway.quota.counter import WINDOW_SECONDS, CounterStoreError, QuotaCounter

# The backends, the Redis client and tests.conftest are imported where used: each
# spawned worker imports this module, and starts faster with only its own backend.

WORKERS = 4
CONSUMERS = ("TS-ONE", "TS-TWO", "TS-THREE")
CALLS = 1000  # per consumer and window, spread over the workers
QUOTA = 500  # R-Q-1's production default
WINDOWS = 3
FIRST_MINUTE = 29_000_000
IN_FLIGHT = 16  # concurrent hits per worker


@dataclass(frozen=True)
class Store:
    """Where the workers count: a backend and its address (picklable, for spawn)."""

    backend: str
    target: str
    namespace: str  # a key prefix no other test uses

    def counter(self) -> QuotaCounter:
        # Imported here, see the top of the module.
        if self.backend == "sqlite":
            from ensu.gateway.quota.sqlite import SQLiteCounter  # noqa: PLC0415

            return SQLiteCounter(Path(self.target))
        if self.backend == "postgresql":
            from ensu.gateway.quota.postgresql import PostgresCounter  # noqa: PLC0415

            return PostgresCounter.from_url(self.target)
        from ensu.gateway.quota.redis import RedisCounter  # noqa: PLC0415

        return RedisCounter.from_url(self.target, prefix=self.namespace, timeout=5.0)


@dataclass
class Tally:
    """What one worker saw: accepted calls, refusals and store errors per (consumer,
    window), and refusals whose ``Retry-After`` was wrong."""

    accepted: Counter[tuple[str, int]]
    refused: Counter[tuple[str, int]]
    errors: Counter[tuple[str, int]]
    bad_retry_after: int = 0


def retry_after_is_valid(now: float, retry_after: int | None) -> bool:
    """Retrying after ``retry_after`` seconds lands in the next window, not a second
    later than needed, and the value is a whole number of seconds from 1 to 60."""
    if retry_after is None or not 1 <= retry_after <= WINDOW_SECONDS:
        return False
    window_end = (math.floor(now / WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    return now + retry_after >= window_end > now + retry_after - 1


def calls_of(worker: int, window: int) -> list[tuple[str, float]]:
    """This worker's share of every consumer's calls in ``window``, interleaved, each at
    its own instant across the window (call i of a consumer at i/CALLS of the minute)."""
    start = (FIRST_MINUTE + window) * WINDOW_SECONDS
    return [
        (consumer, start + index * (WINDOW_SECONDS - 0.001) / (CALLS - 1))
        for index in range(worker, CALLS, WORKERS)
        for consumer in CONSUMERS
    ]


async def _one(counter: QuotaCounter, key: str, now: float, window: int, tally: Tally) -> None:
    consumer = key.rpartition(":")[2]
    try:
        decision = await counter.hit(key=key, limit=QUOTA, now=now)
    except CounterStoreError:
        tally.errors[consumer, window] += 1
        return
    if decision.allowed:
        tally.accepted[consumer, window] += 1
        return
    tally.refused[consumer, window] += 1
    if not retry_after_is_valid(now, decision.retry_after):
        tally.bad_retry_after += 1


async def _hammer(store: Store, worker: int, barrier: Barrier) -> Tally:
    tally = Tally(Counter(), Counter(), Counter())
    counter = store.counter()
    in_flight = anyio.Semaphore(IN_FLIGHT)

    async def call(consumer: str, now: float, window: int) -> None:
        async with in_flight:
            await _one(counter, f"{store.namespace}{consumer}", now, window, tally)

    try:
        for window in range(WINDOWS):
            await anyio.to_thread.run_sync(barrier.wait, 60)  # every worker starts together
            async with anyio.create_task_group() as group:
                for consumer, now in calls_of(worker, window):
                    group.start_soon(call, consumer, now, window)
    finally:
        await counter.aclose()
    return tally


def worker_main(store: Store, worker: int, barrier: Barrier, results: Queue[object]) -> None:
    """One worker process: its tally, or the traceback of what went wrong."""
    try:
        results.put(asyncio.run(_hammer(store, worker, barrier)))
    except BaseException:
        results.put(traceback.format_exc())


def run_workers(store: Store) -> list[Tally]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results: Queue[object] = context.Queue()
    processes = [
        context.Process(target=worker_main, args=(store, worker, barrier, results))
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    failures = [outcome for outcome in outcomes if not isinstance(outcome, Tally)]
    assert not failures, failures[0]
    return [outcome for outcome in outcomes if isinstance(outcome, Tally)]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend; the keys carry a prefix of their own (PostgreSQL and
    Redis are shared), and only those are deleted from Redis afterwards."""
    from redis import Redis  # noqa: PLC0415 - see the imports at the top

    from tests.conftest import REDIS_URL, require_service  # noqa: PLC0415 - idem

    namespace = f"ensu-test-{secrets.token_hex(4)}:"
    if request.param == "sqlite":
        yield Store("sqlite", str(tmp_path / "quota.db"), namespace)
    elif request.param == "postgresql":
        yield Store("postgresql", request.getfixturevalue("postgres_database"), namespace)
    else:
        require_service("Redis", REDIS_URL)
        yield Store("redis", REDIS_URL, namespace)
        client = Redis.from_url(REDIS_URL)
        try:
            for name in client.scan_iter(match=f"{namespace}*", count=1000):
                client.delete(name)
        finally:
            client.close()


@pytest.mark.slow
def test_four_processes_accept_exactly_the_quota(store: Store) -> None:
    """R-Q-1, the acceptance test: per consumer and window, exactly the quota is
    accepted across four processes (never one more, at most 1 % fewer), and every 429
    says when to retry."""
    tallies = run_workers(store)
    accepted = sum((t.accepted for t in tallies), Counter[tuple[str, int]]())
    refused = sum((t.refused for t in tallies), Counter[tuple[str, int]]())
    errors = sum((t.errors for t in tallies), Counter[tuple[str, int]]())
    cells = [(consumer, window) for consumer in CONSUMERS for window in range(WINDOWS)]
    for cell in cells:
        assert accepted[cell] + refused[cell] + errors[cell] == CALLS
        assert accepted[cell] <= QUOTA, (cell, accepted[cell])  # never one more
        assert accepted[cell] >= math.floor(QUOTA * 0.99), (cell, accepted[cell])
    assert sum(t.bad_retry_after for t in tallies) == 0
    # Every worker took part in every window: the count was shared, not one process's.
    for tally in tallies:
        assert all(tally.accepted[cell] + tally.refused[cell] > 0 for cell in cells)
