"""The API's reads of documents, on the hot path (R-DATA-3, R-DATA-4).

The routes read one document by identifier, or one page of a subject's documents. Through
the ORM and an async session that cost a few hundred microseconds of Python per call,
and on SQLite a hop to aiosqlite's thread for each statement; these reads are plain SQL
on a plain connection instead, returning small immutable rows:

- :class:`SQLiteReader` (the embedded default): the standard library's ``sqlite3`` on a
  read-only connection, **in the event loop's thread**. A point read of a WAL database
  never waits for a writer and takes tens of microseconds, less than the thread hop it
  replaces. (A database on a slow disk would block the loop on a cold page: the scaled-out
  mode runs on PostgreSQL.)
- :class:`EngineReader` (PostgreSQL, or SQLite without a file): the same SQL through the
  async engine's Core connection (no ORM, no session), bounded by the store timeout.

Any failure of the database is :class:`~ensu.errors.StoreUnavailable` (503 930004):
bounded and structured, never a 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ensu.errors import StoreUnavailable

_COLUMNS = (
    "d.id, d.idensua, d.docdistrib, d.doccfs, d.code, d.periode_debut, d.periode_fin,"
    " d.date_emission, d.taille, d.sha256"
)
#: The identifier column of each ``typeIdentifiant`` (fixed names, never from the request).
IDENTIFIER_COLUMNS = {"IDENSUA": "idensua", "DOCDISTRIB": "docdistrib", "DOCCFS": "doccfs"}
# Statements are assembled from the fixed names above, never from request data; every
# value is a bound parameter.
_ONE = {
    kind: f"SELECT {_COLUMNS}, s.siren, s.idsp FROM documents d"  # noqa: S608  # nosec B608  # fixed names
    f" JOIN subjects s ON s.id = d.subject_id WHERE d.{column} = :identifier"
    for kind, column in IDENTIFIER_COLUMNS.items()
}
_SUBJECT = {
    "siren": "SELECT id FROM subjects WHERE siren = :value",
    "idsp": "SELECT id FROM subjects WHERE idsp = :value",
}
_PAGE_WHERE = (
    " WHERE d.subject_id = :subject AND d.code IN ({codes})"
    " AND d.periode_fin >= :date_debut AND d.periode_debut <= :date_fin"
    " AND d.periode_debut >= :period_start AND d.periode_fin <= :period_end"
)
_COUNT = "SELECT count(*) FROM documents d" + _PAGE_WHERE  # noqa: S608  # nosec B608  # fixed text
_PAGE = (
    f"SELECT {_COLUMNS} FROM documents d"  # noqa: S608  # nosec B608  # fixed names
    + _PAGE_WHERE
    + " ORDER BY d.periode_debut DESC, d.code, d.id LIMIT :limit OFFSET :offset"
)


@dataclass(frozen=True, slots=True)
class DocumentMeta:
    """A document's metadata row, as the routes render it and the content route reads it."""

    id: int
    idensua: str
    docdistrib: str | None
    doccfs: str | None
    code: str
    periode_debut: dt.date
    periode_fin: dt.date
    date_emission: dt.date
    taille: int
    sha256: bytes


def _date(value: Any) -> dt.date:
    # SQLite keeps dates as ISO text, PostgreSQL returns dates.
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _meta(row: Sequence[Any]) -> DocumentMeta:
    return DocumentMeta(
        id=row[0],
        idensua=row[1],
        docdistrib=row[2],
        doccfs=row[3],
        code=row[4],
        periode_debut=_date(row[5]),
        periode_fin=_date(row[6]),
        date_emission=_date(row[7]),
        taille=row[8],
        sha256=bytes(row[9]),
    )


@dataclass(frozen=True, slots=True)
class PageFilter:
    """One page of a subject's documents: the query's codes and dates within the
    perimeter's period (already validated by :mod:`ensu.documents.queries`)."""

    subject_field: str  # "siren" or "idsp"
    subject_value: str
    codes: Sequence[str]
    date_debut: dt.date
    date_fin: dt.date
    period_start: dt.date
    period_end: dt.date
    limit: int
    offset: int


def _page_statements(page: PageFilter) -> tuple[str, str, dict[str, Any]]:
    names = [f":c{i}" for i in range(len(page.codes))]
    params: dict[str, Any] = {f"c{i}": code for i, code in enumerate(page.codes)}
    params.update(
        date_debut=page.date_debut.isoformat(),
        date_fin=page.date_fin.isoformat(),
        period_start=page.period_start.isoformat(),
        period_end=page.period_end.isoformat(),
        limit=page.limit,
        offset=page.offset,
    )
    codes = ", ".join(names)
    return _COUNT.format(codes=codes), _PAGE.format(codes=codes), params


class DocumentReader(Protocol):
    async def one(
        self, kind: str, identifier: str
    ) -> tuple[DocumentMeta, str | None, str | None] | None:
        """The document so identified with its subject's SIREN and IDSP, or None."""
        ...

    async def page(self, page: PageFilter) -> tuple[list[DocumentMeta], int]:
        """One page of documents and the total; ``([], 0)`` for an unknown subject."""
        ...

    def close(self) -> None: ...


class SQLiteReader:
    """Reads on a read-only ``sqlite3`` connection in the loop's thread (module docstring)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 200) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        self._connection = connection
        return connection

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        connection = self._connection or self._open()
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            self.close()  # reopened on the next read
            raise StoreUnavailable(reason="database_error") from exc

    async def one(
        self, kind: str, identifier: str
    ) -> tuple[DocumentMeta, str | None, str | None] | None:
        rows = self._rows(_ONE[kind], {"identifier": identifier})
        if not rows:
            return None
        row = rows[0]
        return _meta(row), row[10], row[11]

    async def page(self, page: PageFilter) -> tuple[list[DocumentMeta], int]:
        subject = self._rows(_SUBJECT[page.subject_field], {"value": page.subject_value})
        if not subject or not page.codes:
            return [], 0
        count, select, params = _page_statements(page)
        params["subject"] = subject[0][0]
        total = self._rows(count, params)[0][0]
        return [_meta(row) for row in self._rows(select, params)], int(total)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class EngineReader:
    """The same reads through the async engine's Core connections, each bounded by
    ``timeout`` seconds (module docstring)."""

    def __init__(self, engine: AsyncEngine, *, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self._dates_as_text = engine.dialect.name == "sqlite"

    async def _rows(self, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[Any]]:
        try:
            async with asyncio.timeout(self.timeout), self.engine.connect() as connection:
                results = []
                for sql, params in statements:
                    results.append(list((await connection.execute(text(sql), params)).all()))
                    if not results[-1]:
                        break
                return results
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(reason="database_unavailable") from exc

    async def one(
        self, kind: str, identifier: str
    ) -> tuple[DocumentMeta, str | None, str | None] | None:
        (rows,) = await self._rows([(_ONE[kind], {"identifier": identifier})])
        if not rows:
            return None
        row = rows[0]
        return _meta(row), row[10], row[11]

    async def page(self, page: PageFilter) -> tuple[list[DocumentMeta], int]:
        if not page.codes:
            return [], 0
        count, select, params = _page_statements(page)
        if not self._dates_as_text:
            for name in ("date_debut", "date_fin", "period_start", "period_end"):
                params[name] = getattr(page, name)
        # One connection, three statements; the subject's id is a sub-select.
        subject = f"({_SUBJECT[page.subject_field]})"
        params["value"] = page.subject_value
        statements = [
            (_SUBJECT[page.subject_field], {"value": page.subject_value}),
            (count.replace(":subject", subject), params),
            (select.replace(":subject", subject), params),
        ]
        results = await self._rows(statements)
        if not results[0]:
            return [], 0
        return [_meta(row) for row in results[2]], int(results[1][0][0])

    def close(self) -> None:
        pass


def make_reader(engine: AsyncEngine, *, timeout: float) -> DocumentReader:
    """The reader for ``engine``'s database (see the module docstring)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return SQLiteReader(Path(str(url.database)))
    return EngineReader(engine, timeout=timeout)
