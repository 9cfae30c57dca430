"""Maintenance windows (R-SQ-1): at most 2 hours of real time between 23:00 and 06:00
Europe/Paris, one a night; daylight-saving nights counted in real time."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.operations import maintenance
from ensu.operations.maintenance import MaintenanceWatch, WindowRefused, check_window, parse_moment

#: Well before every window below.
NOW = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)


def window(start: str, end: str, now: dt.datetime = NOW) -> dt.date:
    return check_window(parse_moment(start), parse_moment(end), now=now)


def test_two_hours_inside_the_night_are_allowed() -> None:
    assert window("2026-12-03T23:00", "2026-12-04T01:00") == dt.date(2026, 12, 3)
    assert window("2026-12-04T04:00", "2026-12-04T06:00") == dt.date(2026, 12, 3)


def test_two_hours_and_one_minute_are_refused() -> None:
    with pytest.raises(WindowRefused, match="2 h 01 of real time"):
        window("2026-12-03T23:30", "2026-12-04T01:31")


def test_a_window_starting_at_22_30_is_refused() -> None:
    with pytest.raises(WindowRefused, match="between 23:00 and 06:00"):
        window("2026-12-03T22:30", "2026-12-03T23:30")


def test_a_window_ending_after_six_is_refused() -> None:
    with pytest.raises(WindowRefused, match="after 06:00"):
        window("2026-12-04T05:00", "2026-12-04T06:01")


def test_the_autumn_night_counts_the_repeated_hour() -> None:
    """2026-10-25: 03:00 CEST becomes 02:00 CET; 01:30 → 03:00 on the wall clock is 2 h 30."""
    with pytest.raises(WindowRefused, match="2 h 30 of real time"):
        window("2026-10-25T01:30", "2026-10-25T03:00")
    # The same night, before the change, wall clock and real time agree.
    assert window("2026-10-25T00:30", "2026-10-25T01:30") == dt.date(2026, 10, 24)


def test_the_spring_night_counts_the_missing_hour() -> None:
    """2026-03-29: 02:00 CET becomes 03:00 CEST; 01:30 → 04:15 on the wall clock is 1 h 45."""
    assert window("2026-03-29T01:30", "2026-03-29T04:15", now=NOW.replace(year=2025)) == dt.date(
        2026, 3, 28
    )


def test_wall_clock_times_that_do_not_exist_or_exist_twice_are_refused() -> None:
    with pytest.raises(WindowRefused, match="does not exist"):
        parse_moment("2026-03-29T02:30")
    with pytest.raises(WindowRefused, match=r"happens twice.*\+02:00 or \+01:00"):
        parse_moment("2026-10-25T02:30")
    first = parse_moment("2026-10-25T02:30+02:00")
    second = parse_moment("2026-10-25T02:30+01:00")
    assert second - first == dt.timedelta(hours=1)


def test_an_offset_is_taken_as_given() -> None:
    assert parse_moment("2026-12-03T22:00Z") == dt.datetime(2026, 12, 3, 22, tzinfo=dt.UTC)
    # 22:00 UTC is 23:00 Paris in winter: inside the night.
    assert window("2026-12-03T22:00Z", "2026-12-03T23:00Z") == dt.date(2026, 12, 3)


def test_windows_over_or_backwards_are_refused() -> None:
    with pytest.raises(WindowRefused, match="over already"):
        window("2026-09-03T23:00", "2026-09-04T00:00")
    with pytest.raises(WindowRefused, match="end after it starts"):
        window("2026-12-04T01:00", "2026-12-04T00:00")
    with pytest.raises(WindowRefused, match="ISO 8601"):
        parse_moment("tomorrow night")


@pytest.mark.anyio
async def test_one_window_a_night_planned_cancelled_and_journaled(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        planned = await maintenance.plan(
            session=session,
            start=parse_moment("2026-12-03T23:30"),
            end=parse_moment("2026-12-04T01:00"),
            reason="montée de version",
            actor="test",
            now=NOW,
        )
    async with sessionmaker() as session, session.begin():
        with pytest.raises(WindowRefused, match="one window a night"):
            await maintenance.plan(
                session=session,
                start=parse_moment("2026-12-04T04:00"),
                end=parse_moment("2026-12-04T05:00"),
                reason="second",
                actor="test",
                now=NOW,
            )
    async with sessionmaker() as session, session.begin():
        await maintenance.cancel(session=session, window_id=planned.id, actor="test", now=NOW)
    async with sessionmaker() as session, session.begin():
        again = await maintenance.plan(
            session=session,
            start=parse_moment("2026-12-04T04:00"),
            end=parse_moment("2026-12-04T05:00"),
            reason="second",
            actor="test",
            now=NOW,
        )
        with pytest.raises(maintenance.WindowNotFound):
            await maintenance.cancel(session=session, window_id=planned.id, actor="t", now=NOW)
    async with sessionmaker() as session:
        tags = [event.tag for event in (await session.scalars(select(Event))).all()]
        listed = await maintenance.windows(session=session, since=NOW)
        every = await maintenance.windows(session=session, cancelled=True)
    assert tags == [
        "operations:maintenance:planned",
        "operations:maintenance:cancelled",
        "operations:maintenance:planned",
    ]
    assert [w.id for w in listed] == [again.id]
    assert [w.id for w in every] == [planned.id, again.id]
    assert maintenance.utc(listed[0].start_at) == dt.datetime(2026, 12, 4, 3, tzinfo=dt.UTC)


@pytest.mark.anyio
async def test_the_watch_decides_by_the_clock_on_the_windows_in_memory(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    start = parse_moment("2026-12-03T23:30")
    end = parse_moment("2026-12-04T00:30")
    clock = [NOW.timestamp()]
    watch = MaintenanceWatch(sessionmaker, clock=lambda: clock[0])
    async with sessionmaker() as session, session.begin():
        await maintenance.plan(
            session=session, start=start, end=end, reason="r", actor="t", now=NOW
        )
    await watch.refresh()
    assert watch.current(start.timestamp() - 0.001) is None
    current = watch.current(start.timestamp())
    assert current is not None
    assert current.retry_after(start.timestamp()) == 3600
    assert current.retry_after(end.timestamp() - 0.2) == 1
    assert watch.current(end.timestamp()) is None
    clock[0] = end.timestamp()  # once over, the window is no longer loaded
    await watch.refresh()
    assert watch.windows == ()
