"""The sandbox's bulk path into the documents tables (R-DATA-6).

``documents.service`` adds one row at a time (a look-up, then an insert): right for an
import, too slow for a generator that writes hundreds of thousands of rows. Here rows go in
batches with ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL alike), which keeps the same
idempotence: a document whose natural key (subject, code, period, SHA-256) or identifier
already exists is left as it is, so re-running a seed adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ensu.documents.models import Document, Subject
from ensu.sandbox.plan import SubjectPlan

REQUIRED_TABLES = ("document_codes", "subjects", "documents", "audit_events")
LOOKUP_BATCH = 500

SubjectKey = tuple[str | None, str | None]


async def missing_tables(engine: AsyncEngine) -> list[str]:
    """The tables the generator needs that the database lacks (none once migrated)."""
    async with engine.connect() as connection:
        present = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return [table for table in REQUIRED_TABLES if table not in present]


async def count_documents(*, session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Document)) or 0


async def count_subjects(*, session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Subject)) or 0


async def existing_idensua(*, session: AsyncSession, idensuas: Sequence[str]) -> set[str]:
    """Those of ``idensuas`` that the database already holds."""
    found = await session.scalars(select(Document.idensua).where(Document.idensua.in_(idensuas)))
    return set(found.all())


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


async def ensure_subjects(
    *, session: AsyncSession, subjects: Sequence[SubjectPlan]
) -> dict[SubjectKey, int]:
    """Insert the subjects that are absent; the row id of every subject, by (SIREN, IDSP)."""
    rows = [{"siren": s.siren, "idsp": s.idsp, "denomination": s.denomination} for s in subjects]
    if rows:
        await session.execute(_insert(session, Subject).on_conflict_do_nothing(), rows)
    ids: dict[SubjectKey, int] = {}
    sirens = [s.siren for s in subjects if s.siren is not None]
    idsps = [s.idsp for s in subjects if s.idsp is not None]
    for column, values in ((Subject.siren, sirens), (Subject.idsp, idsps)):
        for batch in _batches(values, LOOKUP_BATCH):
            found = await session.execute(
                select(Subject.id, Subject.siren, Subject.idsp).where(column.in_(batch))
            )
            ids.update({(siren, idsp): id_ for id_, siren, idsp in found})
    return ids


async def insert_documents(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (the columns of ``documents``), skipping those that already exist."""
    if rows:
        await session.execute(_insert(session, Document).on_conflict_do_nothing(), rows)


def _batches(values: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
