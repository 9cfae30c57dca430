"""The French working-day calendar against known dates (R-SQ-4, CGU §9.3)."""

from __future__ import annotations

import datetime as dt

import pytest

from ensu.compliance.calendar import (
    add_months,
    add_working_days,
    is_working_day,
    working_days_between,
)
from tests.support.cli import Invoke

D = dt.date


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        # 1 May, 8 May and Ascension (14 May) 2026 are holidays: the brief's known answer.
        (D(2026, 4, 28), 14, D(2026, 5, 21)),
        (D(2026, 4, 28), 7, D(2026, 5, 11)),
        # Christmas and New Year's Day; weekends skipped.
        (D(2026, 12, 23), 3, D(2026, 12, 29)),
        (D(2026, 12, 31), 1, D(2027, 1, 4)),
        # Easter Monday 2026 is 6 April; Whit Monday 25 May.
        (D(2026, 4, 3), 1, D(2026, 4, 7)),
        (D(2026, 5, 22), 1, D(2026, 5, 26)),
        # 14 July (Tuesday) and 15 August (Saturday) 2026.
        (D(2026, 7, 13), 1, D(2026, 7, 15)),
        (D(2026, 5, 21), -14, D(2026, 4, 28)),
        (D(2026, 4, 28), 0, D(2026, 4, 28)),
    ],
)
def test_known_working_days(start: dt.date, count: int, expected: dt.date) -> None:
    assert add_working_days(start, count) == expected


def test_alsace_moselle_adds_good_friday_and_saint_stephen() -> None:
    # Good Friday 2026 is 3 April: a working day in Paris, not in Metz or Strasbourg.
    assert is_working_day(D(2026, 4, 3))
    assert not is_working_day(D(2026, 4, 3), alsace_moselle=True)
    assert add_working_days(D(2026, 4, 2), 1) == D(2026, 4, 3)
    assert add_working_days(D(2026, 4, 2), 1, alsace_moselle=True) == D(2026, 4, 7)
    # 26 December 2025 is a Friday.
    assert add_working_days(D(2025, 12, 24), 2) == D(2025, 12, 29)
    assert add_working_days(D(2025, 12, 24), 2, alsace_moselle=True) == D(2025, 12, 30)


def test_working_days_between_is_the_inverse() -> None:
    start = D(2026, 4, 28)
    for count in range(0, 40):
        assert working_days_between(start, add_working_days(start, count)) == count


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2026, 5, 31), -3, D(2026, 2, 28)),
        (D(2028, 5, 31), -3, D(2028, 2, 29)),
        (D(2026, 1, 15), 2, D(2026, 3, 15)),
        (D(2026, 12, 31), 2, D(2027, 2, 28)),
        (D(2026, 3, 1), 36, D(2029, 3, 1)),
        (D(2026, 3, 1), -72, D(2020, 3, 1)),
    ],
)
def test_add_months_clamps_to_the_month_end(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


def test_the_command_prints_the_iso_date(run: Invoke) -> None:
    result = run("calendar", "add-working-days", "2026-04-28", "14")
    assert (result.exit_code, result.output.strip()) == (0, "2026-05-21")
    alsace = run("calendar", "add-working-days", "2026-04-02", "1", "--alsace-moselle")
    assert alsace.output.strip() == "2026-04-07"
    bad = run("calendar", "add-working-days", "28/04/2026", "14")
    assert bad.exit_code == 2
