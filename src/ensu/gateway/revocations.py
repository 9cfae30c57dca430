"""The revoked tokens, as the gateway sees them: a set kept fresh in the background.

Reading ``oauth_revocations`` on every call cost a database round trip per request (the
largest item of the hot path's profile). Instead each process keeps the set of revoked
``jti`` in memory and refreshes it every :data:`REFRESH_SECONDS` with the rows revoked
since its last read (minus :data:`OVERLAP_SECONDS`, so that a revocation committed late,
or stamped by a host whose clock is a little behind, is still seen). So:

- a revocation made through *this* process is enforced on the next call
  (:meth:`RevocationWatch.add`, called by ``POST /revoke``);
- one made through another process or host is enforced within ``REFRESH_SECONDS`` plus
  one query (within one second across instances; 0.35-0.45 s measured by the
  scale-out test), and never later than ``STALE_SECONDS`` whatever the database does;
- if the set cannot be refreshed for :data:`STALE_SECONDS`, the gateway no longer knows
  what was revoked and refuses every token with 503 930004 (fail closed, RFC 7009 §2:
  a revoked token must not be accepted).

A row whose ``jti`` is :func:`ensu.oauth.service.client_cutoff` of a client revokes every
token of that client issued up to its ``revoked_at`` (an incident's isolation, R-OPS-2):
tokens are not stored, so this is how all of them are revoked at once.

Entries are forgotten once their token has expired (``verify`` refuses it anyway).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.background import StopSignal
from ensu.errors import StoreUnavailable
from ensu.oauth.keys import LEEWAY_SECONDS
from ensu.oauth.models import CLIENT_CUTOFF_PREFIX, Revocation

logger = logging.getLogger("ensu.gateway")

REFRESH_SECONDS = 0.4
OVERLAP_SECONDS = 30.0
#: The set is never trusted older than this: while refreshes fail, or crawl on a slow
#: database, every token is refused (503 930004) rather than a revocation missed. Two
#: seconds, not one: a database at 0.2 s a round trip (the strain tests) still serves.
STALE_SECONDS = 2.0


class RevocationWatch:
    """The revoked ``jti`` of unexpired tokens, refreshed in the background."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        refresh: float = REFRESH_SECONDS,
        stale_after: float = STALE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.refresh_interval = refresh
        self.stale_after = stale_after
        self.clock = clock
        #: jti -> expiry (Unix seconds) of the revoked token.
        self._revoked: dict[str, float] = {}
        #: client id -> (cut-off, expiry): its tokens issued up to the cut-off are revoked.
        self._cutoffs: dict[str, tuple[float, float]] = {}
        self._since: dt.datetime | None = None
        self._fresh_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._stop_signal = StopSignal()

    async def start(self) -> None:
        """Load the set once (a failure is retried by the loop), then keep it fresh."""
        try:
            await self.refresh()
        except Exception as exc:  # the loop retries; calls are refused meanwhile
            logger.error("revocations not loaded: %r", exc)
        self._task = asyncio.create_task(self._loop(), name="revocation-watch")

    async def close(self) -> None:
        self._stop_signal.stop()
        if self._task is not None:
            await self._task
            self._task = None

    @property
    def fresh_at(self) -> float:
        """When the set was last refreshed (Unix seconds; -inf before the first)."""
        return self._fresh_at

    def add(self, jti: str, expires_at: float) -> None:
        """A revocation made in this process: effective at once here."""
        self._revoked[jti] = expires_at

    def is_revoked(self, jti: str, *, client_id: str = "", issued_at: float = 0.0) -> bool:
        """Whether ``jti`` is revoked, itself or as a token of ``client_id`` issued at
        ``issued_at`` up to the client's cut-off; :class:`StoreUnavailable` when the set
        is stale."""
        if jti in self._revoked:
            return True
        cutoff = self._cutoffs.get(client_id)
        if cutoff is not None and issued_at <= cutoff[0]:
            return True
        if self.clock() - self._fresh_at > self.stale_after:
            raise StoreUnavailable(reason="revocations_stale")
        return False

    async def refresh(self) -> None:
        """Read the revocations made since the last read (with the overlap)."""
        started = self.clock()
        query = select(Revocation.jti, Revocation.expires_at, Revocation.revoked_at)
        if self._since is not None:
            query = query.where(Revocation.revoked_at >= self._since)
        async with self.sessionmaker() as session:
            rows = (await session.execute(query)).all()
        for jti, expires_at, revoked_at in rows:
            if jti.startswith(CLIENT_CUTOFF_PREFIX):
                client_id = jti.removeprefix(CLIENT_CUTOFF_PREFIX)
                self._cutoffs[client_id] = (_unix(revoked_at), _unix(expires_at))
            else:
                self._revoked[jti] = _unix(expires_at)
        horizon = started - LEEWAY_SECONDS
        if any(expiry < horizon for expiry in self._revoked.values()):
            self._revoked = {j: e for j, e in self._revoked.items() if e >= horizon}
        if any(expiry < horizon for _, expiry in self._cutoffs.values()):
            self._cutoffs = {c: v for c, v in self._cutoffs.items() if v[1] >= horizon}
        self._since = dt.datetime.fromtimestamp(started - OVERLAP_SECONDS, dt.UTC)
        self._fresh_at = started

    async def _loop(self) -> None:
        failing = False
        while not await self._stop_signal.sleep(self.refresh_interval):
            try:
                await self.refresh()
            except Exception as exc:  # keep trying; is_revoked fails closed when stale
                if not failing:
                    logger.error("revocations cannot be refreshed: %r", exc)
                failing = True
                continue
            if failing:
                logger.warning("revocations refreshed again")
            failing = False


def _unix(moment: dt.datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()
