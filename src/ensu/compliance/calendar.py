"""The French working-day calendar of the terms' deadlines (R-SQ-4, CGU §9.3).

A working day (*jour ouvré*) is a Monday to Friday that is not a French public holiday
(the ``holidays`` package, France). The Alsace-Moselle variant (département 57, and the
same days in 67 and 68) adds Good Friday and Saint Stephen's Day (26 December).

Every deadline counted in working days goes through :func:`add_working_days`: the
notice of a production change (14 working days, 7 in an emergency; R-SQ-4) and the
``ensu calendar add-working-days`` command. Deadlines counted in calendar months (the
homologation's 3 months, the questionnaire's 3 years, the resiliation's 2 months) use
:func:`add_months`.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from functools import lru_cache

import holidays

#: The subdivision of the ``holidays`` package whose calendar Alsace-Moselle follows.
ALSACE_MOSELLE = "57"


@lru_cache(maxsize=256)
def _holidays(year: int, alsace_moselle: bool) -> frozenset[dt.date]:
    days = holidays.country_holidays(
        "FR", subdiv=ALSACE_MOSELLE if alsace_moselle else None, years=year
    )
    return frozenset(days)


def is_holiday(day: dt.date, *, alsace_moselle: bool = False) -> bool:
    """True for a French public holiday (with Alsace-Moselle's own if asked)."""
    return day in _holidays(day.year, alsace_moselle)


def is_working_day(day: dt.date, *, alsace_moselle: bool = False) -> bool:
    """Monday to Friday, not a public holiday."""
    return day.weekday() < 5 and not is_holiday(day, alsace_moselle=alsace_moselle)


def add_working_days(start: dt.date, count: int, *, alsace_moselle: bool = False) -> dt.date:
    """The ``count``-th working day after ``start`` (``start`` itself is not counted).

    ``count`` 0 is ``start``; a negative ``count`` counts backwards. 14 working days
    after Tuesday 2026-04-28 is 2026-05-21 (1 May, 8 May and Ascension are holidays).
    """
    step = 1 if count >= 0 else -1
    day, left = start, abs(count)
    while left:
        day += dt.timedelta(days=step)
        if is_working_day(day, alsace_moselle=alsace_moselle):
            left -= 1
    return day


def working_days_between(start: dt.date, end: dt.date, *, alsace_moselle: bool = False) -> int:
    """Working days in ``(start, end]``: how much notice ``end`` gives from ``start``."""
    if end <= start:
        return 0
    return sum(
        is_working_day(start + dt.timedelta(days=offset), alsace_moselle=alsace_moselle)
        for offset in range(1, (end - start).days + 1)
    )


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months, clamped to the month's last day
    (31 May minus 3 months is 28 or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))
