"""Measured availability (R-SQ-2): minute buckets, the report against 97.16 %, its chart.

**What is measured.** The service is open every minute of every day (CGU §11), so each
minute of the period is judged, in this order:

1. *planned*: the minute overlaps a planned maintenance window (not cancelled). It is
   **unavailable**: the terms count planned unavailability in the figure (§9.3).
2. *failed*: some call of the documents API in that minute was answered 5xx with a code
   other than 930001 (an integrity stop 930002, counters down 930003, database down
   930004, overload 930005, an internal error 500), or the internal probe failed in it
   (no answer, a TLS or connection error, a 5xx other than 930001). **Unavailable.**
3. *unobserved*: nothing answered in that minute, neither a real call nor the probe (the
   server was down, or the probe disabled and no one called). **Unavailable**: a
   minute nobody can show was served is not counted as served.
4. otherwise *available*: something was answered (any status below 500) and nothing
   failed.

A call answered 4xx is the consumer's error, not the service's: it shows the service up.

**Where the observations come from.** The gateway counts every call it journals
(:meth:`Outcomes.observe_call`, from where it builds the journal record), and the probe
(:mod:`ensu.operations.probe`) its own calls; each process adds its counts to the table
``availability_minutes`` every :data:`FLUSH_SECONDS` (an upsert that adds, so instances
behind one database sum up).

**The report.** Per Paris day and overall: the ratio of available minutes over all the
minutes of the period that are over, against :data:`TARGET`; and the same over the
producer's coverage range, 07:00-20:00 Paris (§9.3).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from sqlalchemy import Executable, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.background import StopSignal
from ensu.operations import maintenance
from ensu.operations.maintenance import PARIS, Planned
from ensu.operations.models import AvailabilityMinute

logger = logging.getLogger("ensu.operations")

#: The availability the terms promise (CGU §9.3).
TARGET = 0.9716
#: The producer's coverage range, Paris time (CGU §9.3).
COVERAGE = (dt.time(7, 0), dt.time(20, 0))
FLUSH_SECONDS = 5.0
MAINTENANCE_CODE = "930001"
#: Columns of a bucket, in the order of the in-memory lists.
COLUMNS = ("answered", "failed", "probe_ok", "probe_failed")


def is_failure(status: int, code: str | None) -> bool:
    """Whether an answer shows the service unavailable: a 5xx, but the planned window's."""
    return status >= 500 and code != MAINTENANCE_CODE


class Outcomes:
    """This process's observations per Unix minute, flushed to the database.

    :meth:`observe_call` is on the hot path: two dictionary updates, no I/O, no lock (one
    event loop). ``totals`` are the counts since start, for the metrics.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession] | None,
        *,
        flush_interval: float = FLUSH_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.flush_interval = flush_interval
        self.pending: dict[int, list[int]] = {}
        self.totals: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopper = StopSignal()

    def _bucket(self, at: float) -> list[int]:
        minute = int(at // 60)
        bucket = self.pending.get(minute)
        if bucket is None:
            bucket = self.pending[minute] = [0, 0, 0, 0]
        return bucket

    def observe_call(self, at: float, status: int, code: str | None) -> None:
        failed = is_failure(status, code)
        self._bucket(at)[1 if failed else 0] += 1
        key = ("call", "failed" if failed else "answered")
        self.totals[key] = self.totals.get(key, 0) + 1

    def observe_probe(self, at: float, *, ok: bool) -> None:
        self._bucket(at)[2 if ok else 3] += 1
        key = ("probe", "ok" if ok else "failed")
        self.totals[key] = self.totals.get(key, 0) + 1

    async def start(self) -> None:
        if self.sessionmaker is not None:
            self._task = asyncio.create_task(self._loop(), name="availability-flush")

    async def close(self) -> None:
        self._stopper.stop()
        if self._task is not None:
            await self._task
            self._task = None
            await self._flush_logged()

    async def flush(self) -> None:
        """Add the pending counts to the table (kept in memory if that fails)."""
        if not self.pending or self.sessionmaker is None:
            return
        taken, self.pending = self.pending, {}
        try:
            async with self.sessionmaker() as session, session.begin():
                await add_minutes(session=session, counts=taken)
        except BaseException:
            for minute, counts in taken.items():  # put them back for the next flush
                bucket = self.pending.setdefault(minute, [0, 0, 0, 0])
                for index, count in enumerate(counts):
                    bucket[index] += count
            raise

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # kept in memory; the next flush retries
            logger.warning("availability minutes not flushed: %r", exc)

    async def _loop(self) -> None:
        while not await self._stopper.sleep(self.flush_interval):
            await self._flush_logged()


async def add_minutes(*, session: AsyncSession, counts: Mapping[int, Sequence[int]]) -> None:
    """Add ``counts`` (Unix minute → answered, failed, probe_ok, probe_failed) to the
    minutes' rows, creating them as needed (one upsert; instances sum up)."""
    if not counts:
        return
    table = AvailabilityMinute.__table__
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415

        pg = postgresql.insert(AvailabilityMinute)
        statement: Executable = pg.on_conflict_do_update(
            index_elements=["minute"],
            set_={name: table.c[name] + pg.excluded[name] for name in COLUMNS},
        )
    else:
        from sqlalchemy.dialects import sqlite  # noqa: PLC0415

        lite = sqlite.insert(AvailabilityMinute)
        statement = lite.on_conflict_do_update(
            index_elements=["minute"],
            set_={name: table.c[name] + lite.excluded[name] for name in COLUMNS},
        )
    rows = [
        {"minute": minute, **dict(zip(COLUMNS, values, strict=True))}
        for minute, values in sorted(counts.items())
    ]
    await session.execute(statement, rows)


# -- the report ------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """Minutes of a period, by verdict (see the module docstring)."""

    minutes: int = 0
    available: int = 0
    planned: int = 0
    failed: int = 0
    unobserved: int = 0

    @property
    def ratio(self) -> float | None:
        return self.available / self.minutes if self.minutes else None

    @property
    def meets_target(self) -> bool | None:
        ratio = self.ratio
        return None if ratio is None else ratio >= TARGET

    def add(self, verdict: str) -> None:
        self.minutes += 1
        setattr(self, verdict, getattr(self, verdict) + 1)

    def as_dict(self) -> dict[str, object]:
        return {
            "minutes": self.minutes,
            "available": self.available,
            "planned": self.planned,
            "failed": self.failed,
            "unobserved": self.unobserved,
            "ratio": self.ratio,
            "meetsTarget": self.meets_target,
        }


@dataclass(slots=True)
class Day:
    day: dt.date
    all: Tally = field(default_factory=Tally)
    coverage: Tally = field(default_factory=Tally)


@dataclass(slots=True)
class Report:
    start: dt.date
    end: dt.date
    days: list[Day]
    all: Tally
    coverage: Tally

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "target": TARGET,
            "coverageRange": [t.isoformat(timespec="minutes") for t in COVERAGE],
            "timezone": "Europe/Paris",
            "overall": self.all.as_dict(),
            "overallCoverage": self.coverage.as_dict(),
            "days": [
                {"day": d.day.isoformat(), **d.all.as_dict(), "coverage": d.coverage.as_dict()}
                for d in self.days
            ],
        }


def period_minutes(start: dt.date, end: dt.date) -> range:
    """The Unix minutes from ``start`` 00:00 to ``end`` 24:00, Paris (``end`` included)."""
    first = dt.datetime.combine(start, dt.time(0), tzinfo=PARIS).timestamp()
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=PARIS).timestamp()
    return range(int(first // 60), int(after // 60))


def verdict(row: Sequence[int] | None, *, planned: bool) -> str:
    """The verdict of one minute (see the module docstring) from its counts."""
    if planned:
        return "planned"
    if row is None:
        return "unobserved"
    answered, failed, probe_ok, probe_failed = row
    if failed or probe_failed:
        return "failed"
    if answered or probe_ok:
        return "available"
    return "unobserved"


def compute(
    *,
    start: dt.date,
    end: dt.date,
    rows: Mapping[int, Sequence[int]],
    windows: Iterable[Planned],
    now: float,
) -> Report:
    """The report of the Paris days ``start``..``end`` from the minutes' counts and the
    planned windows; minutes not over at ``now`` are left out."""
    if end < start:
        raise ValueError("the period ends before it starts")
    spans = sorted((w.start, w.end) for w in windows)
    days: dict[dt.date, Day] = {}
    overall, coverage = Tally(), Tally()
    for minute in period_minutes(start, end):
        begin = minute * 60
        if begin + 60 > now:
            break
        planned = any(s < begin + 60 and e > begin for s, e in spans)
        judged = verdict(rows.get(minute), planned=planned)
        local = dt.datetime.fromtimestamp(begin, PARIS)
        day = days.get(local.date())
        if day is None:
            day = days[local.date()] = Day(local.date())
        day.all.add(judged)
        overall.add(judged)
        if COVERAGE[0] <= local.time() < COVERAGE[1]:
            day.coverage.add(judged)
            coverage.add(judged)
    return Report(start, end, list(days.values()), overall, coverage)


async def report(
    *, session: AsyncSession, start: dt.date, end: dt.date, now: float | None = None
) -> Report:
    """:func:`compute` over what the database holds."""
    span = period_minutes(start, end)
    query = select(AvailabilityMinute).where(
        AvailabilityMinute.minute >= span.start, AvailabilityMinute.minute < span.stop
    )
    rows = {
        row.minute: (row.answered, row.failed, row.probe_ok, row.probe_failed)
        for row in (await session.scalars(query)).all()
    }
    since = dt.datetime.fromtimestamp(span.start * 60, dt.UTC)
    until = span.stop * 60
    windows = [
        w
        for w in maintenance.planned(await maintenance.windows(session=session, since=since))
        if w.start < until
    ]
    moment = time.time() if now is None else now
    return compute(start=start, end=end, rows=rows, windows=windows, now=moment)


# -- the chart --------------------------------------------------------------------------

_FLOOR = 0.90  # the chart's vertical axis: 90 % to 100 % (every figure of interest)
_HEIGHT, _TOP, _LEFT, _BAR = 160, 30, 48, 22


def _percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.2f} %".replace(".", ",")


def svg(report: Report) -> str:
    """The report as an SVG bar chart (server-side, no script): one bar a day, the
    97.16 % target as a line; French labels (the portal shows it as is)."""
    width = _LEFT + max(1, len(report.days)) * _BAR + 20
    height = _TOP + _HEIGHT + 44

    def y(ratio: float) -> float:
        clipped = min(1.0, max(_FLOOR, ratio))
        return _TOP + (1.0 - clipped) / (1.0 - _FLOOR) * _HEIGHT

    title = (
        f"Disponibilité du {report.start:%d/%m/%Y} au {report.end:%d/%m/%Y} :"
        f" {_percent(report.all.ratio)} (objectif {_percent(TARGET)})"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        ' font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-size="12">{escape(title)}</text>',
    ]
    for tick in (0.90, 0.95, 1.0):
        parts.append(
            f'<text x="4" y="{y(tick) + 4:.1f}">{int(tick * 100)} %</text>'
            f'<line x1="{_LEFT - 4}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"'
            ' stroke="#ddd"/>'
        )
    for index, day in enumerate(report.days):
        ratio = day.all.ratio or 0.0
        x, top = _LEFT + index * _BAR, y(ratio)
        colour = "#2e7d32" if ratio >= TARGET else "#c62828"
        label = f"{day.day:%d/%m/%Y} : {_percent(day.all.ratio)}"
        parts.append(
            f'<rect x="{x + 2}" y="{top:.1f}" width="{_BAR - 4}"'
            f' height="{_TOP + _HEIGHT - top:.1f}" fill="{colour}">'
            f"<title>{escape(label)}</title></rect>"
            f'<text x="{x + _BAR / 2:.1f}" y="{_TOP + _HEIGHT + 14}" text-anchor="middle"'
            f' font-size="9">{day.day:%d/%m}</text>'
        )
    target_y = y(TARGET)
    parts.append(
        f'<line x1="{_LEFT - 4}" x2="{width - 10}" y1="{target_y:.1f}" y2="{target_y:.1f}"'
        ' stroke="#1565c0" stroke-dasharray="4 3"/>'
        f'<text x="{_LEFT}" y="{_TOP + _HEIGHT + 34}" fill="#1565c0">'
        f"- - objectif {escape(_percent(TARGET))} ; maintenances programmées comptées"
        " comme indisponibles</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
