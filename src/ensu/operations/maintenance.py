"""Maintenance windows (R-SQ-1): planning them, and knowing on the hot path if one is on.

The terms (CGU §11) open the service 0:00-24:00 every day but for one maintenance window
of at most **2 hours between 23:00 and 6:00** (Europe/Paris). So a window is refused when

- it lasts more than 2 hours of *real* time: durations are computed in UTC, so the autumn
  night (2026-10-25, 03:00 CEST becomes 02:00 CET) makes "01:30 → 03:00" 2 h 30, and the
  spring night makes "01:30 → 03:30" 1 h (02:00-03:00 does not exist that night);
- it leaves the night it starts in, 23:00 Paris to 06:00 Paris the next morning (a night
  is named by the date of its 23:00);
- another window, not cancelled, is already planned that night (one window a night);
- it is over already, or ends before it starts.

A time given without an offset is Paris wall-clock time. A wall-clock time that does not
exist (the spring gap) or exists twice (the autumn fold, 02:00-03:00) is refused with a
message asking for the offset: guessing would move the window by an hour.

During a window the gateway answers 503 930001 with ``Retry-After`` (the seconds to its
end), ``etatSante`` says ``maintenance`` and ``/token`` answers ``temporarily_unavailable``.
The hot path never reads the database for that: each process keeps the planned windows
in memory (:class:`MaintenanceWatch`), reloaded every :data:`REFRESH_SECONDS`, and
compares the clock to them. Instances behind one database therefore agree at a window's
start to within their clocks' skew, and on a window planned or cancelled at short notice
within ``REFRESH_SECONDS`` plus one query (under a second).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.background import Watch
from ensu.operations.models import MaintenanceWindow

logger = logging.getLogger("ensu.operations")

PARIS = ZoneInfo("Europe/Paris")
MAX_DURATION = dt.timedelta(hours=2)
NIGHT_START = dt.time(23, 0)
NIGHT_END = dt.time(6, 0)
#: How often each process reloads the planned windows: a window planned or cancelled on
#: another instance is seen within this plus one query (the agreement bound: 1 s).
REFRESH_SECONDS = 0.4


class WindowRefused(ValueError):
    """A window the terms do not allow; the message says why, for the operator."""


class WindowNotFound(LookupError):
    """No such window, or it is cancelled already."""


def utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive value read back from SQLite is UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def parse_moment(text: str) -> dt.datetime:
    """An ISO 8601 time; without an offset, Paris wall-clock time (refused when that
    wall-clock time does not exist or is ambiguous on a daylight-saving night)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise WindowRefused(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-03T23:30)") from None
    if moment.tzinfo is not None:
        return moment.astimezone(dt.UTC)
    first = moment.replace(tzinfo=PARIS, fold=0)
    second = moment.replace(tzinfo=PARIS, fold=1)
    as_utc = first.astimezone(dt.UTC)
    if as_utc.astimezone(PARIS).replace(tzinfo=None) != moment:
        raise WindowRefused(
            f"{text} does not exist in Europe/Paris (the clocks go forward that night)"
        )
    if first.utcoffset() != second.utcoffset():
        offsets = " or ".join(_offset(m) for m in (first, second))
        raise WindowRefused(
            f"{text} happens twice in Europe/Paris (the clocks go back that night):"
            f" give the offset, {offsets}"
        )
    return as_utc


def _offset(moment: dt.datetime) -> str:
    text = moment.strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def night_of(moment: dt.datetime) -> dt.date | None:
    """The night ``moment`` falls in (the date of its 23:00), or None outside 23:00-06:00."""
    local = moment.astimezone(PARIS)
    if local.time() >= NIGHT_START:
        return local.date()
    if local.time() < NIGHT_END:
        return local.date() - dt.timedelta(days=1)
    return None


def night_bounds(night: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The night's 23:00 and the next morning's 06:00 Paris, in UTC (real instants)."""
    start = dt.datetime.combine(night, NIGHT_START, tzinfo=PARIS)
    end = dt.datetime.combine(night + dt.timedelta(days=1), NIGHT_END, tzinfo=PARIS)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def check_window(start: dt.datetime, end: dt.datetime, *, now: dt.datetime) -> dt.date:
    """The night of the window ``start``-``end`` (aware times), or :class:`WindowRefused`.

    Every comparison is made in UTC: Python compares two times of the *same* zone by
    their wall clocks, which is wrong across a daylight-saving change.
    """
    start, end, now = utc(start), utc(end), utc(now)
    if end <= start:
        raise WindowRefused("the window must end after it starts")
    if end - start > MAX_DURATION:
        raise WindowRefused(
            f"the window lasts {_duration(end - start)} of real time: at most 2 h (CGU §11)"
        )
    if end <= now:
        raise WindowRefused("the window is over already")
    night = night_of(start)
    if night is None:
        raise WindowRefused(
            f"the window starts at {_paris(start)}: it must lie between 23:00 and 06:00"
            " Europe/Paris (CGU §11)"
        )
    first, last = night_bounds(night)
    if end > last:
        raise WindowRefused(
            f"the window ends at {_paris(end)}, after 06:00 of the night of {night}:"
            " it must lie between 23:00 and 06:00 Europe/Paris (CGU §11)"
        )
    assert first <= start
    return night


def _duration(delta: dt.timedelta) -> str:
    minutes = math.ceil(delta.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60:02d}"


def _paris(moment: dt.datetime) -> str:
    return moment.astimezone(PARIS).isoformat(timespec="minutes")


# -- planning ------------------------------------------------------------------------


async def plan(
    *,
    session: AsyncSession,
    start: dt.datetime,
    end: dt.datetime,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> MaintenanceWindow:
    """Plan a window (checked by :func:`check_window`, one a night) and journal it."""
    if not reason.strip():
        raise WindowRefused("a window needs a reason")
    night = check_window(start, end, now=now)
    taken = await session.scalar(
        select(MaintenanceWindow).where(
            MaintenanceWindow.night == night.isoformat(),
            MaintenanceWindow.cancelled_at.is_(None),
        )
    )
    if taken is not None:
        raise WindowRefused(
            f"window {taken.id} is already planned the night of {night}"
            f" ({_paris(utc(taken.start_at))} → {_paris(utc(taken.end_at))}): one window a night"
        )
    window = MaintenanceWindow(
        start_at=utc(start),
        end_at=utc(end),
        night=night.isoformat(),
        reason=reason.strip(),
        planned_by=actor,
        planned_at=utc(now),
    )
    session.add(window)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_MAINTENANCE_PLANNED,
        actor=actor,
        details=_details(window),
    )
    return window


async def cancel(
    *, session: AsyncSession, window_id: int, actor: str, now: dt.datetime
) -> MaintenanceWindow:
    """Cancel a planned window (effective on every instance within a second)."""
    window = await session.get(MaintenanceWindow, window_id)
    if window is None or window.cancelled_at is not None:
        raise WindowNotFound(f"no planned window {window_id}")
    window.cancelled_at, window.cancelled_by = utc(now), actor
    await audit.record_event(
        session=session,
        tag=EventTag.OPERATIONS_MAINTENANCE_CANCELLED,
        actor=actor,
        details=_details(window),
    )
    return window


def _details(window: MaintenanceWindow) -> dict[str, object]:
    return {
        "window": window.id,
        "start": utc(window.start_at).isoformat(),
        "end": utc(window.end_at).isoformat(),
        "reason": window.reason[:200],
    }


async def windows(
    *, session: AsyncSession, since: dt.datetime | None = None, cancelled: bool = False
) -> list[MaintenanceWindow]:
    """Windows ending after ``since`` (all when None), by start; ``cancelled`` adds those."""
    query = select(MaintenanceWindow).order_by(MaintenanceWindow.start_at)
    if since is not None:
        query = query.where(MaintenanceWindow.end_at > utc(since))
    if not cancelled:
        query = query.where(MaintenanceWindow.cancelled_at.is_(None))
    return list((await session.scalars(query)).all())


# -- the hot path's view -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    """A window as the hot path compares it: Unix seconds."""

    id: int
    start: float
    end: float

    def retry_after(self, now: float) -> int:
        """The seconds to the window's end, at least 1 (``Retry-After``)."""
        return max(1, math.ceil(self.end - now))


def planned(rows: Sequence[MaintenanceWindow]) -> tuple[Planned, ...]:
    return tuple(
        Planned(row.id, utc(row.start_at).timestamp(), utc(row.end_at).timestamp())
        for row in rows
        if row.cancelled_at is None
    )


class MaintenanceWatch(Watch):
    """The planned windows not over yet, in memory, reloaded in the background.

    :meth:`current` is what the hot path calls: a comparison of the clock with a few
    numbers, no I/O. A reload that fails keeps the windows last read (a database down
    does not invent nor forget a maintenance); the next reload catches up.
    """

    job = "maintenance-watch"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        refresh: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sessionmaker, refresh=refresh, clock=clock, logger=logger)
        self.windows: tuple[Planned, ...] = ()

    def current(self, now: float) -> Planned | None:
        """The window ``now`` falls in, if any."""
        for window in self.windows:
            if window.start <= now < window.end:
                return window
        return None

    async def load(self, session: AsyncSession, now: float) -> None:
        since = dt.datetime.fromtimestamp(now, dt.UTC)
        self.windows = planned(await windows(session=session, since=since))
