"""Fixtures of the journal tests: a journal store on SQLite (its own file) or PostgreSQL,
a signing key, records, and a way to tamper with the store behind the journal's back."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ensu.audit.note import NoteSigner
from ensu.audit.records import CallRecord, Decision
from ensu.audit.store import JournalStore
from ensu.audit.writer import JournalWriter

T0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
JOURNAL_TABLES = ("journal_leaves", "journal_nodes", "journal_checkpoints", "journal_alarms")
Tamper = Callable[..., None]


def call(
    number: int,
    *,
    teleservice: str = "TS-A",
    at: dt.datetime | None = None,
    refused: bool = False,
) -> CallRecord:
    """The record of an API call, different for each ``number``."""
    return CallRecord(
        at=at or T0 + dt.timedelta(seconds=number),
        consumer="13000000000005",
        id_teleservice=teleservice,
        client_id="client-a",
        thumbprint="A" * 43,
        jti=f"jti-{number}",
        ip="192.0.2.10",
        correlation_id=f"c0ffee00-0000-4000-8000-{number:012d}",
        siren="732829320",
        document_codes=("AMR",),
        document_ids=() if refused else (f"DOC{number}",),
        route="/ensudocuments/v1/documents/{idensua}",
        decision=Decision.REFUSED if refused else Decision.ALLOWED,
        reason="OutsidePerimeter" if refused else "ok",
        status=403 if refused else 200,
        error_code="900910" if refused else None,
    )


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg", "postgresql")


def _truncate_journal(url: str) -> None:
    with psycopg.connect(plain_url(url), autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute(f"TRUNCATE {', '.join(JOURNAL_TABLES)}, audit_events RESTART IDENTITY")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty journal store: its own SQLite file, or PostgreSQL's migrated tables."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_journal(url)
    return url


@pytest.fixture
async def journal_store(journal_url: str) -> AsyncIterator[JournalStore]:
    journal = JournalStore(journal_url, busy_timeout_ms=200)
    await journal.ensure_schema()
    try:
        yield journal
    finally:
        await journal.dispose()


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(signing_key: Ed25519PrivateKey) -> NoteSigner:
    return NoteSigner("journal.test/ensu-journal", signing_key)


@pytest.fixture
async def writer(journal_store: JournalStore, signer: NoteSigner) -> AsyncIterator[JournalWriter]:
    """A started writer that signs a checkpoint every 100 records, not on a timer."""
    journal_writer = JournalWriter(
        journal_store, signer, checkpoint_every=100, checkpoint_interval=0, retry_interval=0.01
    )
    await journal_writer.start()
    try:
        yield journal_writer
    finally:
        await journal_writer.close()


@pytest.fixture
async def postgres_journal(
    postgres_database: str, signer: NoteSigner
) -> AsyncIterator[JournalWriter]:
    """A started writer on PostgreSQL only (for what only PostgreSQL has: triggers)."""
    _truncate_journal(postgres_database)
    journal = JournalStore(postgres_database)
    journal_writer = JournalWriter(journal, signer, checkpoint_every=100, checkpoint_interval=0)
    await journal_writer.start()
    try:
        yield journal_writer
    finally:
        await journal_writer.close()
        await journal.dispose()


async def fill(writer: JournalWriter, count: int, *, start: int = 0, batch: int = 100) -> None:
    """Append ``count`` call records, ``batch`` at a time (one commit each)."""
    for first in range(start, start + count, batch):
        size = min(batch, start + count - first)
        await asyncio.gather(*(writer.append(call(first + i)) for i in range(size)))


@pytest.fixture
def tamper(journal_url: str) -> Tamper:
    """``tamper(sql, params...)``: change the store as an attacker with database access
    would (on PostgreSQL a superuser, who can switch the triggers off)."""

    def run(statement: str, *params: object) -> None:
        if journal_url.startswith("sqlite"):
            path = journal_url.split("///", 1)[1]
            with contextlib.closing(sqlite3.connect(path)) as connection, connection:
                connection.execute(statement.replace("%s", "?"), params)
            return
        with psycopg.connect(plain_url(journal_url), autocommit=True) as server:
            server.execute("SET session_replication_role = replica")
            server.execute(statement.encode(), params)

    return run
