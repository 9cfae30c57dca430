"""Measured availability (R-SQ-2): injected outcomes give the figure computed by hand, and
the planned windows count against it."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.operations import availability
from ensu.operations.availability import Outcomes, add_minutes, compute
from ensu.operations.maintenance import PARIS, Planned
from ensu.operations.models import MaintenanceWindow

DAY1, DAY2 = dt.date(2026, 12, 1), dt.date(2026, 12, 2)
AFTER = dt.datetime(2026, 12, 5, tzinfo=dt.UTC).timestamp()


def minute(day: dt.date, hour: int, minute: int = 0) -> int:
    return int(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=PARIS).timestamp() // 60)


def paris(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=PARIS).astimezone(dt.UTC)


def injected() -> dict[int, list[int]]:
    """Two days answered every minute, but: 10 minutes with a 5xx (10:00-10:09 on day 1),
    30 minutes nobody observed (03:00-03:29 on day 1), 5 minutes of failed probes
    (19:58-20:02 on day 1, two of them inside the coverage range)."""
    rows = {m: [1, 0, 0, 0] for m in availability.period_minutes(DAY1, DAY2)}
    for m in range(minute(DAY1, 10), minute(DAY1, 10, 10)):
        rows[m] = [5, 1, 0, 0]
    for m in range(minute(DAY1, 3), minute(DAY1, 3, 30)):
        del rows[m]
    for m in range(minute(DAY1, 19, 58), minute(DAY1, 20, 3)):
        rows[m] = [0, 0, 0, 1]
    return rows


#: 2026-12-01 23:00 → 2026-12-02 01:00 Paris: 60 minutes on each day.
WINDOW = Planned(1, paris(DAY1, 23).timestamp(), paris(DAY2, 1).timestamp())


def test_the_report_gives_the_figure_computed_by_hand() -> None:
    found = compute(start=DAY1, end=DAY2, rows=injected(), windows=[WINDOW], now=AFTER)
    first, second = found.days
    # Day 1: 1440 minutes; unavailable 60 planned + 10 failed + 5 probe + 30 unobserved.
    assert (first.all.minutes, first.all.planned, first.all.failed) == (1440, 60, 15)
    assert first.all.unobserved == 30
    assert first.all.ratio == pytest.approx(1335 / 1440)  # 92.708 %
    # 07:00-20:00: 780 minutes, 10 failed and the probe's 19:58 and 19:59.
    assert first.coverage.ratio == pytest.approx(768 / 780)
    # Day 2: the window's second hour only.
    assert second.all.ratio == pytest.approx(1380 / 1440)
    assert second.coverage.ratio == 1.0
    assert found.all.ratio == pytest.approx(2715 / 2880)
    assert found.coverage.ratio == pytest.approx(1548 / 1560)
    assert found.all.meets_target is False
    assert found.coverage.meets_target is True


def test_planned_windows_count_against_the_figure() -> None:
    without = compute(start=DAY2, end=DAY2, rows=injected(), windows=[], now=AFTER)
    with_window = compute(start=DAY2, end=DAY2, rows=injected(), windows=[WINDOW], now=AFTER)
    assert without.all.ratio == 1.0
    assert with_window.all.ratio == pytest.approx(1 - 60 / 1440)


def test_minutes_not_over_are_left_out_and_the_autumn_day_has_25_hours() -> None:
    autumn = dt.date(2026, 10, 25)
    rows = {m: [1, 0, 0, 0] for m in availability.period_minutes(autumn, autumn)}
    assert len(rows) == 1500
    assert compute(start=autumn, end=autumn, rows=rows, windows=[], now=AFTER).all.ratio == 1.0
    noon = dt.datetime.combine(DAY1, dt.time(12), tzinfo=PARIS).timestamp()
    partial = compute(start=DAY1, end=DAY1, rows=injected(), windows=[], now=noon + 30)
    assert partial.all.minutes == 12 * 60


def test_verdicts() -> None:
    assert availability.verdict([3, 0, 1, 0], planned=True) == "planned"
    assert availability.verdict(None, planned=False) == "unobserved"
    assert availability.verdict([0, 0, 0, 0], planned=False) == "unobserved"
    assert availability.verdict([9, 1, 0, 0], planned=False) == "failed"
    assert availability.verdict([9, 0, 3, 1], planned=False) == "failed"
    assert availability.verdict([0, 0, 1, 0], planned=False) == "available"
    assert availability.is_failure(503, "930001") is False
    assert availability.is_failure(503, "930004") is True
    assert availability.is_failure(404, "920404") is False


@pytest.mark.anyio
async def test_the_report_reads_the_minutes_and_windows_of_the_database(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    rows = injected()
    half = {m: [c // 2 for c in counts] for m, counts in rows.items()}
    rest = {m: [c - c // 2 for c in counts] for m, counts in rows.items()}
    async with sessionmaker() as session, session.begin():
        await add_minutes(session=session, counts=half)
    async with sessionmaker() as session, session.begin():
        await add_minutes(session=session, counts=rest)  # instances add up
        session.add_all(
            [
                MaintenanceWindow(
                    start_at=paris(DAY1, 23),
                    end_at=paris(DAY2, 1),
                    night="2026-12-01",
                    reason="r",
                    planned_by="t",
                    planned_at=paris(DAY1, 12),
                ),
                MaintenanceWindow(  # cancelled: it does not count
                    start_at=paris(DAY2, 4),
                    end_at=paris(DAY2, 5),
                    night="2026-12-02",
                    reason="r",
                    planned_by="t",
                    planned_at=paris(DAY1, 12),
                    cancelled_at=paris(DAY1, 13),
                    cancelled_by="t",
                ),
            ]
        )
    async with sessionmaker() as session:
        found = await availability.report(session=session, start=DAY1, end=DAY2, now=AFTER)
    assert found.all.ratio == pytest.approx(2715 / 2880)
    assert found.coverage.ratio == pytest.approx(1548 / 1560)
    document = found.as_dict()
    assert document["target"] == 0.9716
    days = document["days"]
    assert isinstance(days, list)
    assert [day["day"] for day in days] == ["2026-12-01", "2026-12-02"]


@pytest.mark.anyio
async def test_outcomes_are_counted_per_minute_and_flushed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    outcomes = Outcomes(sessionmaker)
    at = minute(DAY1, 9) * 60 + 5.0
    for status, code in ((200, None), (404, "920404"), (503, "930001"), (503, "930004")):
        outcomes.observe_call(at, status, code)
    outcomes.observe_probe(at + 60, ok=True)
    outcomes.observe_probe(at + 120, ok=False)
    await outcomes.flush()
    outcomes.observe_call(at, 200, None)
    await outcomes.flush()
    assert outcomes.pending == {}
    assert outcomes.totals == {
        ("call", "answered"): 4,
        ("call", "failed"): 1,
        ("probe", "ok"): 1,
        ("probe", "failed"): 1,
    }
    async with sessionmaker() as session:
        found = await availability.report(session=session, start=DAY1, end=DAY1, now=AFTER)
    assert (found.all.failed, found.all.available) == (2, 1)  # 09:00 and 09:02; 09:01


def test_the_chart_is_svg_with_a_bar_a_day_and_the_target() -> None:
    found = compute(start=DAY1, end=DAY2, rows=injected(), windows=[WINDOW], now=AFTER)
    chart = availability.svg(found)
    root = ET.fromstring(chart)  # noqa: S314 - our own output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 2
    assert "<script" not in chart
    assert "objectif 97,16 %" in chart
    assert "01/12/2026 : 92,71 %" in chart
