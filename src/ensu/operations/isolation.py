"""Cutting the whole service during an incident, and how every instance knows at once
(R-OPS-2, CGU §8: "isolation ou coupure du service").

A cut is a row of ``service_cuts`` without an end. Like the maintenance windows
(:mod:`ensu.operations.maintenance`), each process keeps the open cut in memory
(:class:`CutWatch`), reloaded every :data:`REFRESH_SECONDS`: the gateway's check is a
look at a field, no I/O. While a cut is open every call under the API prefix is answered
503 930006 (journaled), ``/token`` answers ``temporarily_unavailable`` and ``etatSante``
503 ``degrade``. Instances behind one database follow a cut started or ended anywhere
within ``REFRESH_SECONDS`` plus one query: :data:`PROPAGATION_SECONDS` bounds it, and the
commands wait that long before saying the cut is effective everywhere.

A reload that fails keeps what was last read; a process that never read (a fresh start
with the database down) serves nothing anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.background import Watch
from ensu.operations.models import ServiceCutRecord

logger = logging.getLogger("ensu.operations")

REFRESH_SECONDS = 0.4
#: A change made anywhere is enforced by every instance after at most this: the
#: téléservice views are cached for 1 s (ensu.gateway.layer.VIEW_TTL_SECONDS), the
#: revocations and the cut reloaded every 0.4 s; plus a query's time.
PROPAGATION_SECONDS = 1.5


class CutError(ValueError):
    """A cut that cannot be started or ended; the message says why."""


async def open_cut(*, session: AsyncSession) -> ServiceCutRecord | None:
    return await session.scalar(
        select(ServiceCutRecord)
        .where(ServiceCutRecord.ended_at.is_(None))
        .order_by(ServiceCutRecord.id)
    )


async def start_cut(
    *,
    session: AsyncSession,
    reason: str,
    actor: str,
    incident_id: int | None = None,
    now: dt.datetime | None = None,
) -> ServiceCutRecord:
    """Cut the whole service (every instance within :data:`PROPAGATION_SECONDS`)."""
    if await open_cut(session=session) is not None:
        raise CutError("the service is cut already")
    cut = ServiceCutRecord(
        incident_id=incident_id,
        reason=reason.strip() or "incident",
        started_at=now or dt.datetime.now(dt.UTC),
        started_by=actor,
    )
    session.add(cut)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_SERVICE_CUT,
        actor=actor,
        details={"cut": cut.id, "incident": incident_id, "reason": cut.reason[:200]},
    )
    return cut


async def end_cut(
    *, session: AsyncSession, actor: str, now: dt.datetime | None = None
) -> ServiceCutRecord:
    cut = await open_cut(session=session)
    if cut is None:
        raise CutError("the service is not cut")
    cut.ended_at, cut.ended_by = now or dt.datetime.now(dt.UTC), actor
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_SERVICE_RESTORED,
        actor=actor,
        details={"cut": cut.id, "incident": cut.incident_id},
    )
    return cut


class CutWatch(Watch):
    """The open cut, in memory, reloaded in the background (see the module); a reload
    that fails keeps what was last read."""

    job = "service-cut-watch"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        refresh: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sessionmaker, refresh=refresh, clock=clock, logger=logger)
        #: The open cut's id, or None.
        self.cut: int | None = None

    def current(self) -> int | None:
        """The open cut's id (no I/O: the hot path's question)."""
        return self.cut

    async def load(self, session: AsyncSession, now: float) -> None:
        cut = await open_cut(session=session)
        if (cut.id if cut else None) != self.cut:
            logger.warning("service %s", f"cut ({cut.reason})" if cut else "restored")
        self.cut = cut.id if cut else None
