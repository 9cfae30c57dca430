"""The perimeter (R-DATA-5, R-GW-5): a document is readable only when its code is
authorised and its whole period lies inside the authorised one, bounds included."""

from __future__ import annotations

import datetime as dt

import pytest

from ensu.consumers.perimeter import Perimeter

START, END = dt.date(2023, 1, 1), dt.date(2023, 12, 31)
PERIMETER = Perimeter(codes=frozenset({"AMR", "BIC"}), period_start=START, period_end=END)
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("code", "debut", "fin", "allowed"),
    [
        ("AMR", START, END, True),  # exactly the authorised period
        ("BIC", START + DAY, END - DAY, True),
        ("AMR", START - DAY, END, False),  # starts a day before
        ("AMR", START, END + DAY, False),  # ends a day after
        ("AMR", START - DAY, START - DAY, False),
        ("AMR", END + DAY, END + DAY, False),
        ("TVA", START, END, False),  # a code outside the perimeter
        ("amr", START, END, False),  # codes are compared exactly
    ],
)
def test_a_document_is_allowed_only_inside_code_and_period(
    code: str, debut: dt.date, fin: dt.date, allowed: bool
) -> None:
    assert PERIMETER.allows(code=code, debut=debut, fin=fin) is allowed
