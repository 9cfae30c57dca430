"""The journal store: tiles give any root and any proof; PostgreSQL keeps the log
append-only by trigger, the purge being the one sanctioned change (R-TR-2, R-TR-4)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from ensu.audit import merkle, store
from ensu.audit.store import JournalStore, journal_url
from ensu.audit.writer import JournalWriter
from ensu.config import Settings
from tests.unit.audit.conftest import fill, plain_url

pytestmark = pytest.mark.anyio


def test_the_journal_has_its_own_file_on_sqlite_and_the_main_database_otherwise(
    var_dir: Path,
) -> None:
    sqlite = Settings(var_dir=var_dir)
    assert journal_url(sqlite).endswith("/journal.db")
    assert journal_url(sqlite) != sqlite.database_url
    postgres = Settings(database_url="postgresql+psycopg://u@h/db")
    assert journal_url(postgres) == postgres.database_url


async def test_roots_and_proofs_from_the_tiles_match_the_definition(
    writer: JournalWriter, journal_store: JournalStore
) -> None:
    """600 leaves: two tiles of height 8; any root, inclusion and consistency proof."""
    await fill(writer, 600)
    async with journal_store.read() as connection:
        hashes = await store.leaf_hashes(connection, 0, 600)
        assert await store.stored_nodes(connection, 8, 0, 10) == {
            0: merkle.root_of(hashes[:256]),
            1: merkle.root_of(hashes[256:512]),
        }
        tiles = store.TileReader(connection)
        for size in (1, 255, 256, 257, 511, 512, 513, 600):
            compact = await tiles.compact_range(size)
            assert compact.root() == merkle.root_of(hashes[:size])
        indices = [0, 7, 255, 256, 300, 511, 512, 599]
        proofs = await tiles.inclusion_proofs(indices, 600)
    memory = merkle.memory_subtree(hashes)
    assert proofs == [merkle.inclusion_path(i, 600, memory) for i in indices]


async def test_a_missing_tile_is_reported(
    journal_store: JournalStore, writer: JournalWriter
) -> None:
    await fill(writer, 300)
    async with journal_store.read() as connection:
        with pytest.raises(store.StoreError):
            await store.nodes(connection, 8, 0, 2)
        with pytest.raises(store.StoreError):
            await store.leaf_hashes(connection, 250, 350)


@pytest.mark.postgres
async def test_postgresql_refuses_update_delete_and_truncate(
    postgres_journal: JournalWriter,
) -> None:
    journal_url = postgres_journal.store.url
    await fill(postgres_journal, 300)
    refused = [
        "UPDATE journal_leaves SET record = NULL WHERE leaf_index = 1",
        "UPDATE journal_leaves SET leaf_hash = leaf_hash WHERE leaf_index = 1",
        "DELETE FROM journal_leaves WHERE leaf_index = 299",
        "TRUNCATE journal_leaves CASCADE",
        "UPDATE journal_nodes SET hash = hash",
        "DELETE FROM journal_nodes",
        "TRUNCATE journal_nodes",
        "UPDATE journal_checkpoints SET note = note",
        "DELETE FROM journal_checkpoints",
        "TRUNCATE journal_checkpoints",
        # the purge setting without the purge shape: still refused
        "SELECT set_config('ensu.journal_purge', 'on', false);"
        " UPDATE journal_leaves SET record = NULL, purged_at = now(), leaf_hash = '\\x00'"
        " WHERE leaf_index = 2",
    ]
    with psycopg.connect(plain_url(journal_url), autocommit=True) as connection:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                connection.execute(statement.encode())
        count = connection.execute("SELECT count(*) FROM journal_leaves").fetchone()
    assert count == (300,)


@pytest.mark.postgres
async def test_postgresql_purges_only_through_the_sanctioned_function(
    postgres_journal: JournalWriter,
) -> None:
    await fill(postgres_journal, 10)
    cutoff = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with postgres_journal.store.write() as connection:
        purged = await connection.scalar(
            text("SELECT ensu_journal_purge('exchange', :cutoff, :now, 7)"),
            {"cutoff": cutoff, "now": cutoff},
        )
        left = await connection.scalar(
            text("SELECT count(*) FROM journal_leaves WHERE record IS NOT NULL")
        )
    assert (purged, left) == (7, 3)  # below leaf 7 only: the bound a checkpoint justifies


@pytest.mark.parametrize("bounded", [True, False], ids=["app", "command"])
async def test_the_sqlite_journal_waits_for_a_lock_no_longer_than_the_store_timeout(
    var_dir: Path, bounded: bool
) -> None:
    """ENSU_STORE_TIMEOUT_SECONDS bounds the wait for another process's write lock
    (SQLite's busy_timeout) on every connection of the journal, the batch writer's too."""
    settings = Settings(var_dir=var_dir, store_timeout_seconds=0.25)
    journal = JournalStore.for_settings(settings, bounded=bounded)
    try:
        await journal.ensure_schema()
        async with journal.write() as connection:
            assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 250
        async with journal.read() as connection:
            assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 250
        assert journal.batch_writer is not None
        assert journal.batch_writer.busy_timeout_ms == 250
    finally:
        await journal.dispose()
