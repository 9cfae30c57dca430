"""The sandbox's data plan: fictive subjects and their documents, derived from a seed (R-DATA-6).

Everything here is a pure function of ``(seed, subject index, years)``: the same seed gives
the same subjects, periods and identifiers on any machine, and subject *i* does not depend
on how many subjects are generated, so a larger run extends a smaller one. Randomness comes
from :class:`random.Random` seeded with a string (hashed with SHA-512, stable across Python
runs), and identifiers from HMAC-SHA256 keyed by the seed.

The plan follows the catalogue (R-DATA-1): every subject files the codes of its tax regime
plus a rotating share of the other codes, so that any three consecutive subjects cover every
code and every family; periods follow each code's periodicity and the issue date always
comes after the end of the period (R-DATA-4).
"""

from __future__ import annotations

import base64
import calendar
import datetime as dt
import enum
import functools
import hmac
import math
import random
from dataclasses import dataclass, field
from functools import cached_property

from ensu.documents.catalogue import CATALOGUE, CatalogueEntry
from ensu.documents.identifiers import complete_siren
from ensu.documents.models import Periodicity
from ensu.sandbox import names

#: About one subject in ten has no SIREN, only an IDSP (R-DATA-2); a fixed position in each
#: block of ten (rather than a draw) so that every sandbox of four subjects or more has one.
IDSP_EVERY, IDSP_POSITION = 10, 3
#: Eight-digit SIREN bodies 10000000..99999999, walked by an affine permutation of the index.
SIREN_FIRST, SIREN_SPACE = 10_000_000, 90_000_000


class Regime(enum.StrEnum):
    """The tax regime, which decides the declarative codes a subject files."""

    IS = "impôt sur les sociétés"
    BIC = "bénéfices industriels et commerciaux"
    BNC = "bénéfices non commerciaux"


#: Regime by index (three in five companies are at the IS); three consecutive indexes
#: always include the three regimes.
REGIME_CYCLE = (Regime.IS, Regime.BIC, Regime.BNC, Regime.IS, Regime.IS)
REGIME_CODES: dict[Regime, tuple[str, ...]] = {
    Regime.IS: ("TVA-CA3", "IS-2065", "CVAE-1330", "ACOMPTE-IS"),
    Regime.BIC: ("TVA-CA12", "BIC-2031"),
    Regime.BNC: ("TVA-CA12", "BNC-2035"),
}
EVERY_SUBJECT_CODES = ("RIB-PRO", "AVIS-CFE", "FICHE-OBLIG")
#: Subject *i* always holds group ``i % 3``, and each other code with EXTRA_PROBABILITY.
ROTATING_CODES = (
    ("ATT-REGULARITE", "ETAT-CREANCES", "REMB-TVA-3519", "MANDAT-EC"),
    ("MANDAT-SEPA", "AMR", "HISTO-PAIEMENTS"),
    ("REGIME-TVA", "REMB-CIR", "HABIL-EDI"),
)
EXTRA_PROBABILITY = 0.15
#: Share of the periods of a held periodic code that carry a document (at least one does):
#: it keeps a subject around 15 to 30 documents over three years.
PERIOD_SHARE = {
    Periodicity.MENSUELLE: 1 / 6,
    Periodicity.TRIMESTRIELLE: 1 / 3,
    Periodicity.ANNUELLE: 2 / 3,
}
#: Days between the end of the period and the issue date (inclusive bounds).
ISSUE_DELAY = {
    Periodicity.MENSUELLE: (12, 30),
    Periodicity.TRIMESTRIELLE: (10, 45),
    Periodicity.ANNUELLE: (60, 140),
    Periodicity.PONCTUELLE: (1, 10),
}
DOCDISTRIB_SHARE, DOCCFS_SHARE = 0.3, 0.2
ENTRIES = {entry.code: entry for entry in CATALOGUE}


@dataclass(frozen=True, slots=True)
class SubjectPlan:
    """A fictive professional user: SIREN or IDSP, name, address, size (R-DATA-2)."""

    index: int
    siren: str | None
    idsp: str | None
    denomination: str
    forme_juridique: str
    adresse: str
    commune: str
    regime: Regime
    chiffre_affaires: int  # euros per year; scales every amount of its documents

    @property
    def key(self) -> tuple[str | None, str | None]:
        return (self.siren, self.idsp)


@dataclass(frozen=True, slots=True)
class DocumentPlan:
    """A fictive document's metadata; its PDF is rendered from this and nothing else."""

    subject: SubjectPlan
    entry: CatalogueEntry
    periode_debut: dt.date
    periode_fin: dt.date
    date_emission: dt.date
    idensua: str
    docdistrib: str | None
    doccfs: str | None


@dataclass(frozen=True)
class Plan:
    """The plan of one seed over the calendar years ``first_year..last_year``."""

    seed: int
    first_year: int
    last_year: int
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.first_year > self.last_year:
            raise ValueError("first_year after last_year")
        object.__setattr__(self, "_key", f"ensu-sandbox:{self.seed}".encode())

    def digest(self, label: str, size: int = 32) -> bytes:
        """``size`` bytes derived from the seed and ``label`` (HMAC-SHA256 in counter mode)."""
        blocks = (
            hmac.digest(self._key, f"{label}#{counter}".encode(), "sha256")
            for counter in range(-(-size // 32))
        )
        return b"".join(blocks)[:size]

    def rng(self, label: str) -> random.Random:
        # Reproducible fictive data, not secrets: a seeded PRNG is what we want here.
        return random.Random(f"ensu-sandbox:{self.seed}:{label}")  # noqa: S311

    @cached_property
    def _siren_permutation(self) -> tuple[int, int]:
        """``(a, b)`` of ``i -> a*i + b mod SIREN_SPACE``, a bijection since gcd(a, space) = 1."""
        a = int.from_bytes(self.digest("siren:a", 8)) % SIREN_SPACE
        while math.gcd(a, SIREN_SPACE) != 1:
            a += 1
        return a, int.from_bytes(self.digest("siren:b", 8)) % SIREN_SPACE

    def siren(self, index: int) -> str:
        """A Luhn-valid SIREN, distinct for every index below SIREN_SPACE (R-DATA-2)."""
        a, b = self._siren_permutation
        return complete_siren(f"{SIREN_FIRST + (a * index + b) % SIREN_SPACE:08d}")

    def idsp(self, index: int) -> str:
        """An IDSP: ``SP`` and ten base32 characters (``[A-Z0-9]{12}``)."""
        return "SP" + base64.b32encode(self.digest(f"idsp:{index}", 10)).decode()[:10]

    def subject(self, index: int) -> SubjectPlan:
        rng = self.rng(f"subject:{index}")
        regime = REGIME_CYCLE[index % len(REGIME_CYCLE)]
        without_siren = index % IDSP_EVERY == IDSP_POSITION
        identity = names.company(rng, regime=regime.name, foreign=without_siren)
        adresse, commune = names.address(rng)
        return SubjectPlan(
            index=index,
            siren=None if without_siren else self.siren(index),
            idsp=self.idsp(index) if without_siren else None,
            denomination=identity.denomination,
            forme_juridique=identity.forme_juridique,
            adresse=adresse,
            commune=commune,
            regime=regime,
            chiffre_affaires=_turnover(rng, regime),
        )

    def subjects(self, count: int) -> list[SubjectPlan]:
        return [self.subject(index) for index in range(count)]

    def codes(self, subject: SubjectPlan, rng: random.Random) -> list[str]:
        """The codes ``subject`` holds, in catalogue order."""
        held = {*REGIME_CODES[subject.regime], *EVERY_SUBJECT_CODES}
        for group, codes in enumerate(ROTATING_CODES):
            for code in codes:
                own_group = group == subject.index % len(ROTATING_CODES)
                if own_group or rng.random() < EXTRA_PROBABILITY:
                    held.add(code)
        return [entry.code for entry in CATALOGUE if entry.code in held]

    def documents(self, subject: SubjectPlan) -> list[DocumentPlan]:
        """The subject's documents, by code then period."""
        rng = self.rng(f"documents:{subject.index}")
        plans = []
        for code in self.codes(subject, rng):
            entry = ENTRIES[code]
            for debut, fin in self.periods(entry.periodicite, rng):
                plans.append(self._document(subject, entry, debut, fin, rng))
        return plans

    def periods(
        self, periodicity: Periodicity, rng: random.Random
    ) -> list[tuple[dt.date, dt.date]]:
        """The periods that carry a document: a share of all periods, at least one."""
        if periodicity is Periodicity.PONCTUELLE:
            return self._days(rng)
        every = all_periods(periodicity, self.first_year, self.last_year)
        chosen = [period for period in every if rng.random() < PERIOD_SHARE[periodicity]]
        return chosen or [rng.choice(every)]

    def _days(self, rng: random.Random) -> list[tuple[dt.date, dt.date]]:
        """One or two distinct days (a one-off document covers the day it concerns)."""
        first = dt.date(self.first_year, 1, 1)
        span = (dt.date(self.last_year, 12, 31) - first).days + 1
        count = 2 if rng.random() < 0.25 else 1
        days = sorted(rng.sample(range(span), count))
        return [(first + dt.timedelta(days=d), first + dt.timedelta(days=d)) for d in days]

    def _document(
        self,
        subject: SubjectPlan,
        entry: CatalogueEntry,
        debut: dt.date,
        fin: dt.date,
        rng: random.Random,
    ) -> DocumentPlan:
        label = f"{subject.index}:{entry.code}:{debut.isoformat()}"
        low, high = ISSUE_DELAY[entry.periodicite]
        return DocumentPlan(
            subject=subject,
            entry=entry,
            periode_debut=debut,
            periode_fin=fin,
            date_emission=fin + dt.timedelta(days=rng.randint(low, high)),
            idensua=self.idensua(label),
            docdistrib=self.docdistrib(label) if rng.random() < DOCDISTRIB_SHARE else None,
            doccfs=self.doccfs(label) if rng.random() < DOCCFS_SHARE else None,
        )

    def idensua(self, label: str) -> str:
        """64 opaque base64url characters: 48 bytes of HMAC-SHA256 output (R-DATA-3)."""
        return base64.urlsafe_b64encode(self.digest(f"idensua:{label}", 48)).decode()

    def docdistrib(self, label: str) -> str:
        return f"DD{int.from_bytes(self.digest(f'docdistrib:{label}', 8)) % 10**18:018d}"

    def doccfs(self, label: str) -> str:
        return "CFS" + self.digest(f"doccfs:{label}", 8).hex().upper()


@functools.cache
def all_periods(
    periodicity: Periodicity, first_year: int, last_year: int
) -> tuple[tuple[dt.date, dt.date], ...]:
    """Every month, quarter or year of ``first_year..last_year`` (not for ponctuelle)."""
    months = {Periodicity.MENSUELLE: 1, Periodicity.TRIMESTRIELLE: 3, Periodicity.ANNUELLE: 12}
    step = months[periodicity]
    return tuple(
        (
            dt.date(year, month, 1),
            dt.date(year, month + step - 1, calendar.monthrange(year, month + step - 1)[1]),
        )
        for year in range(first_year, last_year + 1)
        for month in range(1, 13, step)
    )


def _turnover(rng: random.Random, regime: Regime) -> int:
    """Annual turnover in euros, log-uniform; companies at the IS are the larger ones."""
    low, high = (300_000, 40_000_000) if regime is Regime.IS else (40_000, 900_000)
    return round(math.exp(rng.uniform(math.log(low), math.log(high))) / 100) * 100
