"""PostgreSQL connections bounded in time (the scaled-out mode's driver, psycopg 3).

Imported only when a PostgreSQL URL is used: the embedded default never loads psycopg.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import psycopg
from psycopg import waiting
from psycopg.abc import RV, PQGen
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import make_url


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
