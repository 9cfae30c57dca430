"""One clock and one time zone for every "now", "today" and period comparison.

The terms' dates are French legal dates (Europe/Paris): a téléservice valid until
31 December stays valid until midnight in Paris, not in UTC (R-GW-5, R-SQ-1). The token
endpoint and the gateway must agree on that day to the second, so both read the instant
here and turn it into a date here; nothing else calls ``time.time()``,
``datetime.now()`` or ``date.today()`` to decide what day it is.

- :func:`time`: the instant as Unix seconds (the gateway's hot path, the quota windows);
- :func:`now`: the same instant as an aware UTC datetime;
- :func:`legal_date`: the date in Paris at an instant; :func:`today_paris`: at :func:`now`.

Tests inject a clock with :func:`frozen` (or :func:`use`): every reader above then sees
the injected instant, token endpoint and gateway alike.
"""

from __future__ import annotations

import datetime as dt
import time as _time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

#: The time zone of the terms' dates (CGU: French legal time).
PARIS = ZoneInfo("Europe/Paris")

Source = Callable[[], float]
_source: Source = _time.time


def time() -> float:
    """The current instant, Unix seconds."""
    return _source()


def now() -> dt.datetime:
    """The current instant, an aware UTC datetime."""
    return dt.datetime.fromtimestamp(_source(), dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware datetime: a naive one (SQLite hands them back) is read as
    UTC, the zone of every stored time; an aware one is returned as it is."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def legal_date(at: dt.datetime | float) -> dt.date:
    """The date in Paris at ``at`` (an aware datetime, or Unix seconds)."""
    if isinstance(at, dt.datetime):
        return at.astimezone(PARIS).date()
    return dt.datetime.fromtimestamp(at, PARIS).date()


def today_paris() -> dt.date:
    """Today's date in Paris: what "valid today" means everywhere (R-GW-5)."""
    return legal_date(_source())


@contextmanager
def use(source: Source) -> Iterator[None]:
    """Read the instant from ``source`` inside the block (tests)."""
    global _source  # noqa: PLW0603 - the one injection point of the process's clock
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


@contextmanager
def frozen(at: dt.datetime) -> Iterator[None]:
    """The clock stopped at the aware datetime ``at`` inside the block (tests)."""
    if at.tzinfo is None:
        raise ValueError("a frozen clock needs an aware datetime")
    instant = at.timestamp()
    with use(lambda: instant):
        yield
