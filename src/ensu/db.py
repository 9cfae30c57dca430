"""Database access: the async engine, sessions, the declarative ``Base``, migrations.

SQLite (aiosqlite) is the embedded default; PostgreSQL (psycopg 3) is the scaled-out
store. Schema changes go through Alembic migrations in ``ensu/migrations`` only.

The app's engine on PostgreSQL is *bounded* (``make_engine(url, timeout=…)``, from
``ENSU_STORE_TIMEOUT_SECONDS``): a database that is down, cut off, or slow never makes a
request wait longer than the bound for one step — connecting, waiting for a pooled
connection, one statement or commit — but fails it with a DBAPI error that the app
answers 503 930004. See :class:`BoundedConnection` for why the bound is kept in the
client (a black-holed link never lets the server's ``statement_timeout`` answer).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Enum, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from ensu import files

if TYPE_CHECKING:
    from alembic.config import Config

    from ensu.postgres import BoundedConnection

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def string_enum(enum_class: type[enum.StrEnum], length: int) -> Enum:
    """A VARCHAR holding the enum's *values* (the contract's words), checked on write;
    no native enum types, so adding a member is not a schema change on PostgreSQL."""
    return Enum(
        enum_class,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    """Every table of every feature; constraint names are stable for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


#: What a database that is down, cut off or too slow raises, as opposed to a bug (an
#: ``IntegrityError`` or a ``ProgrammingError`` stays a 500): the API answers these with
#: 503 930004 (:class:`ensu.errors.StoreUnavailable`), the token endpoint with 503
#: ``temporarily_unavailable``. ``statement_timeout`` (``QueryCanceled``), a server
#: shutting down (``AdminShutdown``) and a locked SQLite file all raise an
#: ``OperationalError``; ``sqlalchemy.exc.TimeoutError`` is no pooled connection in time.
_FAILURES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    TimeoutError,
    ConnectionError,
)


def store_failures() -> tuple[type[Exception], ...]:
    """The classes above, with psycopg's ``OperationalError`` and ``InterfaceError`` once
    psycopg is loaded: it is imported only in PostgreSQL mode (it weighs ~20 MB), and an
    error of a driver never imported cannot be raised."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _FAILURES
    return (*_FAILURES, psycopg.OperationalError, psycopg.InterfaceError)


def make_engine(
    url: str, *, timeout: float | None = None, pool_size: int = 10, max_overflow: int = 10
) -> AsyncEngine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout.

    On PostgreSQL, ``timeout`` (seconds) bounds each step: connecting, waiting for a
    pooled connection, each statement (see :class:`BoundedConnection`). The app passes
    ``ENSU_STORE_TIMEOUT_SECONDS``; commands and migrations, whose statements may
    legitimately be long, pass nothing.
    """
    if url.startswith("sqlite"):
        files.sqlite_file(url)  # 0600 whatever the umask, and so its -wal and -shm
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True}
    if timeout is None:
        return create_async_engine(url, **pool)
    from ensu.postgres import BoundedConnection, postgres_conninfo  # noqa: PLC0415

    conninfo = postgres_conninfo(url)

    async def connect() -> BoundedConnection:
        return await BoundedConnection.connect_bounded(conninfo, bound=timeout)

    return create_async_engine(url, **pool, pool_timeout=timeout, async_creator=connect)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits on success and rolls back on error."""
    async with sessionmaker() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """Alembic's configuration, built in code so no ``alembic.ini`` is needed."""
    from alembic.config import Config  # noqa: PLC0415 - not in the serving process

    config = Config()
    config.set_main_option("script_location", "ensu:migrations")
    config.set_main_option(
        "file_template",
        "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s",
    )
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (idempotent)."""
    if url.startswith("sqlite"):
        files.sqlite_file(url)  # 0600 whatever the umask, and so its -wal and -shm
    from alembic import command  # noqa: PLC0415 - not in the serving process

    command.upgrade(alembic_config(url), revision)


def check(url: str) -> None:
    """Raise if the models and the migrations disagree (``alembic check``)."""
    from alembic import command  # noqa: PLC0415 - not in the serving process

    command.check(alembic_config(url))


def revision(url: str, message: str) -> None:
    """Autogenerate a date-prefixed migration from the difference models/database."""
    from alembic import command  # noqa: PLC0415 - not in the serving process

    command.revision(alembic_config(url), message, autogenerate=True)
