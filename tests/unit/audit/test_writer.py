"""The journal writer: durable appends, group commit, checkpoints, failing fast while the
store fails, and several writers on one journal (R-TR-2, ARCHITECTURE step 4)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from ensu.audit import store
from ensu.audit.errors import JournalUnavailableError
from ensu.audit.models import JournalLeaf
from ensu.audit.note import NoteSigner
from ensu.audit.store import JournalStore
from ensu.audit.verify import verify
from ensu.audit.writer import JournalWriter
from ensu.errors import JournalUnavailable
from tests.unit.audit.conftest import call, fill

pytestmark = pytest.mark.anyio


def _count_commits(journal: JournalStore) -> Callable[[], int]:
    """Commits from now on, by either path of the store (SQLAlchemy, or the SQLite
    one-hop batch writer)."""
    commits = [0]

    def on_commit(_connection: Any) -> None:
        commits[0] += 1

    event.listen(journal.write_engine.sync_engine, "commit", on_commit)
    batch = journal.batch_writer
    start = batch.commits if batch else 0
    return lambda: commits[0] + (batch.commits - start if batch else 0)


async def _wait_until(condition: Any, what: str) -> None:
    for _ in range(2000):  # a guard against hanging, not a speed requirement
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_burst_shares_commits_and_each_append_returns_once_durable(
    journal_store: JournalStore, writer: JournalWriter, journal_url: str
) -> None:
    """ARCHITECTURE step 4 / R-TR-2: concurrent requests share one transaction; no
    append returns before its record is committed (read back on another connection)."""
    commits = _count_commits(journal_store)
    reader = JournalStore(journal_url)

    async def append_and_read_back(number: int) -> int:
        index = await writer.append(call(number))
        async with reader.read() as connection:
            found = await connection.scalar(
                select(func.count()).where(JournalLeaf.leaf_index == index)
            )
        assert found == 1, f"leaf {index} returned before it was committed"
        return index

    try:
        indices = await asyncio.gather(*(append_and_read_back(n) for n in range(300)))
    finally:
        await reader.dispose()
    assert sorted(indices) == list(range(300))
    assert writer.stats.records == 300
    assert commits() == writer.stats.commits
    assert writer.stats.batches < 300 / 10, writer.stats


async def test_a_lone_append_is_one_commit_and_batches_are_bounded(
    journal_store: JournalStore, signer: NoteSigner
) -> None:
    small = JournalWriter(journal_store, signer, max_batch=50, checkpoint_interval=0)
    await small.start()
    commits = _count_commits(journal_store)
    try:
        assert await small.append(call(0)) == 0
        assert commits() == 1
        await asyncio.gather(*(small.append(call(n)) for n in range(1, 201)))
    finally:
        await small.close()
    assert small.stats.largest_batch == 50
    assert small.stats.batches == 5
    assert small.size == 201


async def test_checkpoints_every_n_records_on_demand_and_when_idle(
    journal_store: JournalStore, signer: NoteSigner
) -> None:
    timed = JournalWriter(journal_store, signer, checkpoint_every=100, checkpoint_interval=0.05)
    await timed.start()
    try:
        await fill(timed, 250)
        async with journal_store.read() as connection:
            sizes = [c.tree_size for c in await store.checkpoints(connection, 0)]
        assert sizes[:2] == [100, 200]
        on_demand = await timed.checkpoint()
        assert on_demand.tree_size == 250
        assert signer.verifier.open(on_demand.note).size == 250
        await timed.append(call(250))

        async def latest() -> int:
            async with journal_store.read() as connection:
                checkpoint = await store.latest_checkpoint(connection)
            return -1 if checkpoint is None else checkpoint.tree_size

        sizes_seen: list[int] = []

        async def poll() -> None:
            while await latest() != 251:
                sizes_seen.append(0)
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), timeout=20)
    finally:
        await timed.close()


class BreakableStore(JournalStore):
    """A store whose writes fail while ``broken`` (a disk full, a lost server)."""

    broken = False

    def __init__(self, url: str) -> None:
        super().__init__(url)
        batch = self.batch_writer
        if batch is not None:  # SQLite's one-hop path breaks as well
            write = batch.write

            async def breakable_write(*args: Any) -> tuple[bool, bool]:
                self._check()
                return await write(*args)

            batch.write = breakable_write  # type: ignore[method-assign,assignment]

    def _check(self) -> None:
        if self.broken:
            raise OperationalError("INSERT", {}, OSError(28, "No space left on device"))

    async def ensure_schema(self) -> None:
        self._check()
        await super().ensure_schema()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        self._check()
        async with super().write() as connection:
            yield connection


async def test_a_failing_store_fails_fast_then_recovers(
    journal_url: str, signer: NoteSigner
) -> None:
    """R-TR-2: no record durable, no data: every append fails (503 930002) until the
    store answers again, then indices continue without a gap."""
    journal = BreakableStore(journal_url)
    breakable = JournalWriter(journal, signer, checkpoint_interval=0, retry_interval=0.01)
    await breakable.start()
    try:
        await fill(breakable, 5)
        journal.broken = True
        results = await asyncio.gather(
            *(breakable.append(call(n)) for n in range(5, 15)), return_exceptions=True
        )
        assert all(isinstance(r, JournalUnavailableError) for r in results)
        assert isinstance(results[0], JournalUnavailable)  # the API's 503 930002
        assert results[0].status == 503
        assert results[0].code == "930002"
        with pytest.raises(JournalUnavailableError):
            await breakable.append(call(99))
        assert breakable.stats.failures == 1
        assert not breakable.available
        journal.broken = False
        await _wait_until(lambda: breakable.available, "the writer to recover")
        assert await breakable.append(call(5)) == 5
    finally:
        await breakable.close()
        await journal.dispose()


async def test_a_locked_sqlite_journal_is_unavailable_until_released(
    tmp_path: Path, signer: NoteSigner
) -> None:
    """The real thing on SQLite: another process holds the journal file's lock."""
    path = tmp_path / "journal.db"
    journal = JournalStore(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=100)
    locked = JournalWriter(journal, signer, checkpoint_interval=0, retry_interval=0.01)
    await locked.start()
    try:
        await fill(locked, 3)
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(JournalUnavailableError):
                await locked.append(call(3))
            assert not locked.available
            other.rollback()
        await _wait_until(lambda: locked.available, "the lock to be released")
        assert await locked.append(call(3)) == 3
    finally:
        await locked.close()
        await journal.dispose()


async def test_a_writer_starting_without_its_store_waits_for_it(
    journal_url: str, signer: NoteSigner
) -> None:
    journal = BreakableStore(journal_url)
    journal.broken = True
    late = JournalWriter(journal, signer, checkpoint_interval=0, retry_interval=0.01)
    await late.start()
    try:
        assert not late.available
        with pytest.raises(JournalUnavailableError):
            await late.append(call(0))
        journal.broken = False
        await _wait_until(lambda: late.available, "the store")
        assert await late.append(call(0)) == 0
    finally:
        await late.close()
        await journal.dispose()


async def test_two_writers_on_one_journal_keep_indices_contiguous(
    journal_url: str, signer: NoteSigner
) -> None:
    """Two processes (here two writers with their own engines) append to one journal."""
    first, second = JournalStore(journal_url), JournalStore(journal_url)
    writers = [
        JournalWriter(first, signer, checkpoint_every=64, checkpoint_interval=0),
        JournalWriter(second, signer, checkpoint_every=64, checkpoint_interval=0),
    ]
    for each in writers:
        await each.start()
    try:
        indices = await asyncio.gather(
            *(writers[n % 2].append(call(n)) for n in range(400)),
            *(writers[1].append(call(n)) for n in range(400, 450)),
        )
        await writers[0].checkpoint()
    finally:
        for each in writers:
            await each.close()
    assert sorted(indices) == list(range(450))
    result = await verify(first, signer.verifier)
    await first.dispose()
    await second.dispose()
    assert result.ok, result.problem
    assert result.size == 450
    assert result.checkpoints >= 2


async def test_close_commits_what_was_queued(writer: JournalWriter) -> None:
    tasks = [asyncio.create_task(writer.append(call(n))) for n in range(20)]
    await asyncio.sleep(0)
    await writer.close()
    assert sorted([await task for task in tasks]) == list(range(20))
    with pytest.raises(JournalUnavailableError):
        await writer.append(call(20))
