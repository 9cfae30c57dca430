"""The operations feature as the others see it (R-SQ-1, R-SQ-2): a thin facade.

The logic lives by topic — :mod:`ensu.operations.maintenance` (windows),
:mod:`ensu.operations.availability` (minutes, report, chart), :mod:`ensu.operations.probe`,
:mod:`ensu.operations.metrics` and :mod:`ensu.operations.listener` — and this module
gives the app what it runs and the gateway what it calls:

- :func:`start` / :meth:`Runtime.close` in the app's lifespan: the maintenance watch
  (``state.maintenance``), the availability outcomes (``state.outcomes``), and, for
  ``ensu serve``, the probe (``state.probe``), the operators' listener, the security
  detection (:mod:`ensu.operations.detection`, R-OPS-1) and the breaches' deadline
  clock (:mod:`ensu.operations.breaches`, R-OPS-3);
- :func:`observe_call` from the gateway, once per journaled call;
- :func:`current_state` for ``etatSante``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ensu.config import Settings
from ensu.operations import metrics
from ensu.operations.availability import Outcomes
from ensu.operations.breaches import BreachClock
from ensu.operations.detection import Detector
from ensu.operations.isolation import CutWatch
from ensu.operations.listener import Listener
from ensu.operations.maintenance import MaintenanceWatch, Planned
from ensu.operations.probe import Probe, ProbeUnconfigured, identity, target_url

logger = logging.getLogger("ensu.operations")


class ServiceState(enum.StrEnum):
    OK = "ok"
    MAINTENANCE = "maintenance"
    DEGRADE = "degrade"


DESCRIPTIONS = {
    ServiceState.OK: "Le service fonctionne normalement.",
    ServiceState.MAINTENANCE: "Le service est en maintenance programmée.",
    ServiceState.DEGRADE: "Le service fonctionne en mode dégradé.",
}


async def current_state(
    *, engine: AsyncEngine, window: Planned | None = None, cut: bool = False
) -> ServiceState:
    """``maintenance`` during a planned ``window``; ``degrade`` while the service is
    cut (R-OPS-2); else ``ok`` when the database answers a trivial query, ``degrade``
    otherwise."""
    if window is not None:
        return ServiceState.MAINTENANCE
    if cut:
        return ServiceState.DEGRADE
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return ServiceState.DEGRADE
    return ServiceState.OK


def observe_call(*, state: Any, path: str, status: int, code: str | None, at: float) -> None:
    """One journaled call (the gateway, where it builds the record): the metrics and the
    availability minutes. No I/O."""
    metrics.observe_call(path, status, code, at)
    state.outcomes.observe_call(at, status, code)


@dataclass
class Runtime:
    watch: MaintenanceWatch
    outcomes: Outcomes
    cuts: CutWatch
    probe: Probe | None = None
    listener: Listener | None = None
    detector: Detector | None = None
    breach_clock: BreachClock | None = None

    async def close(self) -> None:
        """Stop in reverse order; the outcomes flush their last counts."""
        if self.breach_clock is not None:
            await self.breach_clock.close()
        if self.detector is not None:
            await self.detector.close()
        if self.listener is not None:
            await self.listener.close()
        if self.probe is not None:
            await self.probe.close()
        await self.outcomes.close()
        await self.cuts.close()
        await self.watch.close()


async def start(
    *,
    state: Any,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    served: bool,
) -> Runtime:
    """Start the operations of one app; ``served``: by ``ensu serve`` (then with the
    probe, if enabled, and the listener, unless ``ENSU_METRICS_PORT=0``)."""
    watch = MaintenanceWatch(sessionmaker)
    await watch.start()
    state.maintenance = watch
    outcomes = Outcomes(sessionmaker)
    await outcomes.start()
    state.outcomes = outcomes
    cuts = CutWatch(sessionmaker)
    await cuts.start()
    state.cuts = cuts
    runtime = Runtime(watch, outcomes, cuts)
    state.probe = None
    if not served:
        return runtime
    if settings.probe_enabled:
        runtime.probe = state.probe = await _probe(settings, sessionmaker, watch, outcomes)
    if settings.metrics_port:
        runtime.listener = Listener(state, host=settings.metrics_host, port=settings.metrics_port)
        await runtime.listener.start()
    if settings.detection_enabled:  # R-OPS-1: the rules follow the journal
        runtime.detector = state.detector = Detector(
            settings=settings, sessionmaker=sessionmaker, journal=state.journal.store
        )
        await runtime.detector.start()
    # R-OPS-3: the CNIL's 72 hours, alerted before they pass.
    runtime.breach_clock = BreachClock(settings=settings, sessionmaker=sessionmaker)
    await runtime.breach_clock.start()
    return runtime


async def _probe(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    watch: MaintenanceWatch,
    outcomes: Outcomes,
) -> Probe | None:
    try:
        who = await identity(settings=settings, sessionmaker=sessionmaker)
    except ProbeUnconfigured as exc:
        logger.error("availability probe not started: %s", exc)
        return None
    except Exception as exc:  # no PKI, a database error: the API serves without its probe
        logger.error("availability probe not started: %r", exc)
        return None
    probe = Probe(
        url=target_url(settings),
        who=who,
        outcomes=outcomes,
        interval=settings.probe_interval_seconds,
        planned=lambda at: watch.current(at) is not None,
    )
    await probe.start()
    return probe
