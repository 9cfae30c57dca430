"""A caller's perimeter: what it may read (R-DATA-5, R-GW-5).

The perimeter belongs to the consumer's téléservice (its document codes, families
expanded, and its authorised period); the gateway builds one per caller from the
téléservice view, and the documents feature filters every list and read through it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Perimeter:
    """What a caller may read: document codes (families expanded) and the data period."""

    codes: frozenset[str]
    period_start: dt.date
    period_end: dt.date

    def allows(self, *, code: str, debut: dt.date, fin: dt.date) -> bool:
        """The document's code is authorised and its period lies inside the authorised one."""
        return code in self.codes and self.period_start <= debut and fin <= self.period_end
