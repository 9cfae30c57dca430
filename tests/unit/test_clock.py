"""ensu.clock: one instant, one time zone (Europe/Paris) for every "today"."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ensu import clock


@pytest.mark.parametrize(
    ("utc", "paris_day"),
    [
        # Winter (UTC+1): Paris midnight is 23:00 UTC.
        (dt.datetime(2026, 12, 31, 22, 59, 59, tzinfo=dt.UTC), dt.date(2026, 12, 31)),
        (dt.datetime(2026, 12, 31, 23, 0, 0, tzinfo=dt.UTC), dt.date(2027, 1, 1)),
        (dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC), dt.date(2027, 1, 1)),
        # Summer (UTC+2): Paris midnight is 22:00 UTC.
        (dt.datetime(2026, 7, 31, 21, 59, 59, tzinfo=dt.UTC), dt.date(2026, 7, 31)),
        (dt.datetime(2026, 7, 31, 22, 0, 0, tzinfo=dt.UTC), dt.date(2026, 8, 1)),
        (dt.datetime(2026, 7, 31, 23, 59, 59, tzinfo=dt.UTC), dt.date(2026, 8, 1)),
    ],
)
def test_the_legal_date_is_the_date_in_paris(utc: dt.datetime, paris_day: dt.date) -> None:
    assert clock.legal_date(utc) == paris_day
    assert clock.legal_date(utc.timestamp()) == paris_day
    with clock.frozen(utc):
        assert clock.today_paris() == paris_day
        assert clock.now() == utc
        assert clock.time() == utc.timestamp()


def test_frozen_is_undone_after_the_block() -> None:
    with clock.frozen(dt.datetime(2001, 1, 1, tzinfo=dt.UTC)):
        assert clock.now().year == 2001
    assert abs(clock.time() - time.time()) < 60
    naive = dt.datetime(2001, 1, 1)  # noqa: DTZ001 - the refused case
    with pytest.raises(ValueError, match="aware"), clock.frozen(naive):
        pass


def test_as_utc_reads_a_naive_time_as_utc_and_keeps_an_aware_one() -> None:
    naive = dt.datetime(2026, 12, 31, 23, 30)  # noqa: DTZ001 - what SQLite hands back
    assert clock.as_utc(naive) == dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)
    paris = dt.datetime(2026, 12, 31, 23, 30, tzinfo=clock.PARIS)
    assert clock.as_utc(paris) is paris
