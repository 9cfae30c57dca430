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

import asyncio
import enum
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import waiting
from psycopg.abc import RV, PQGen
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import Enum, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from alembic.config import Config

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
STORE_FAILURES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    TimeoutError,
    ConnectionError,
)


class BoundedConnection(psycopg.AsyncConnection[Any]):
    """A psycopg connection on which no wait for the server lasts more than
    ``round_trip_timeout`` seconds (None: unbounded, psycopg's own behaviour).

    Every statement, fetch, commit and rollback of psycopg goes through :meth:`wait`.
    Past the bound, or when the waiting task is cancelled, the connection is closed at
    once and an :class:`psycopg.OperationalError` raised (cancellation re-raised):
    psycopg would otherwise send a cancel request and wait for the server's answer, up
    to 10 s more, over the very link that is failing. A closed connection is
    ``closed``, so SQLAlchemy invalidates it instead of returning it to the pool.
    ``statement_timeout`` alone is not enough: a server that never receives the
    statement (a cut or black-holed link) never times it out.
    """

    round_trip_timeout: float | None = None

    async def wait(  # psycopg's own signature, ``timeout`` included
        self,
        gen: PQGen[RV],
        interval: float = 0.1,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> RV:
        bound = self.round_trip_timeout
        if bound is None:
            return await super().wait(gen, interval, timeout)
        try:
            async with asyncio.timeout(bound):
                return await waiting.wait_async(
                    gen, self.pgconn.socket, interval=interval, timeout=timeout
                )
        except TimeoutError:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {bound:g} s"
            ) from None
        except asyncio.CancelledError:
            self.pgconn.finish()  # abandoned mid-exchange: its state is unknown
            raise

    @classmethod
    async def connect_bounded(
        cls, conninfo: str, *, bound: float, autocommit: bool = False, **params: str
    ) -> BoundedConnection:
        """Connect within ``bound`` seconds (libpq's ``connect_timeout`` is whole
        seconds, at least 2); the server also stops any statement after ``bound``.
        ``params`` are added to ``conninfo`` (``options`` are appended to its own)."""
        statement_timeout = f"-c statement_timeout={math.ceil(bound * 1000)}"
        options = [conninfo_to_dict(conninfo).get("options"), params.pop("options", None)]
        params["options"] = " ".join(
            str(option) for option in [*options, statement_timeout] if option
        )
        try:
            async with asyncio.timeout(bound):
                connection = await cls.connect(
                    make_conninfo(conninfo, **params), autocommit=autocommit
                )
        except TimeoutError:
            raise psycopg.OperationalError(
                f"no connection to the database within {bound:g} s"
            ) from None
        connection.round_trip_timeout = bound
        return connection


def postgres_conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (``postgresql+psycopg://…``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True}
    if timeout is None:
        return create_async_engine(url, **pool)
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
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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
