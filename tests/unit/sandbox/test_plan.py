"""The sandbox's data plan (R-DATA-6): valid identifiers, every code, periods that follow
the periodicity, modest volumes, and the same data for the same seed.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import random
import statistics

import pytest

from ensu.documents.catalogue import CATALOGUE, CODES
from ensu.documents.identifiers import IDENSUA_PATTERN, is_valid_idsp, is_valid_siren
from ensu.documents.models import Family, Periodicity
from ensu.sandbox import content, plan
from ensu.sandbox.plan import DocumentPlan, Plan

FIRST, LAST = 2023, 2025


@pytest.fixture(scope="module")
def seven() -> Plan:
    return Plan(seed=7, first_year=FIRST, last_year=LAST)


def _documents(source: Plan, subjects: int) -> list[DocumentPlan]:
    return [doc for subject in source.subjects(subjects) for doc in source.documents(subject)]


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _period_is_consistent(document: DocumentPlan) -> bool:
    debut, fin = document.periode_debut, document.periode_fin
    match document.entry.periodicite:
        case Periodicity.MENSUELLE:
            return debut.day == 1 and fin == _month_end(debut.year, debut.month)
        case Periodicity.TRIMESTRIELLE:
            return (
                debut.day == 1
                and debut.month in (1, 4, 7, 10)
                and fin == _month_end(debut.year, debut.month + 2)
            )
        case Periodicity.ANNUELLE:
            return (debut, fin) == (dt.date(debut.year, 1, 1), dt.date(debut.year, 12, 31))
        case Periodicity.PONCTUELLE:
            return debut == fin


def test_sirens_are_luhn_valid_and_distinct_and_one_in_ten_has_only_an_idsp(seven: Plan) -> None:
    """R-DATA-2: a SIREN (Luhn) or, failing that, an IDSP; never both, never neither."""
    subjects = seven.subjects(300)
    sirens = [s.siren for s in subjects if s.siren is not None]
    idsps = [s.idsp for s in subjects if s.idsp is not None]
    assert all((s.siren is None) != (s.idsp is None) for s in subjects)
    assert all(is_valid_siren(siren) for siren in sirens)
    assert len(set(sirens)) == len(sirens)
    assert len(idsps) == 30
    assert all(is_valid_idsp(idsp) for idsp in idsps)
    assert len(set(idsps)) == len(idsps)


def test_every_family_and_every_code_appears_from_three_subjects(seven: Plan) -> None:
    """R-DATA-1: even a small sandbox covers the whole catalogue."""
    for source in (seven, Plan(seed=7, first_year=LAST, last_year=LAST)):
        documents = _documents(source, 3)
        assert {doc.entry.code for doc in documents} == CODES
        assert {doc.entry.famille for doc in documents} == set(Family)


def test_periods_follow_the_periodicity_and_issue_dates_follow_the_period(seven: Plan) -> None:
    """R-DATA-4: a month, a quarter, a year or one day; issued after the period ends."""
    documents = _documents(seven, 60)
    assert {doc.entry.periodicite for doc in documents} == set(Periodicity)
    inconsistent = [doc for doc in documents if not _period_is_consistent(doc)]
    assert inconsistent == []
    assert all(doc.date_emission > doc.periode_fin for doc in documents)
    assert all(FIRST <= doc.periode_debut.year <= doc.periode_fin.year <= LAST for doc in documents)


def test_a_subject_holds_a_modest_number_of_documents(seven: Plan) -> None:
    counts = [len(seven.documents(subject)) for subject in seven.subjects(200)]
    assert 15 <= statistics.mean(counts) <= 30
    assert min(counts) >= len(plan.EVERY_SUBJECT_CODES)


def test_identifiers_are_well_formed_and_unique(seven: Plan) -> None:
    """R-DATA-3: IDENSUA of 64 base64url characters; some DOCDISTRIB and DOCCFS."""
    documents = _documents(seven, 40)
    idensuas = [doc.idensua for doc in documents]
    assert all(IDENSUA_PATTERN.fullmatch(idensua) and len(idensua) == 64 for idensua in idensuas)
    assert len(set(idensuas)) == len(idensuas)
    for attribute in ("docdistrib", "doccfs"):
        values = [getattr(doc, attribute) for doc in documents if getattr(doc, attribute)]
        assert 0 < len(values) < len(documents)
        assert len(set(values)) == len(values)
        assert all(len(value) <= 64 for value in values)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another(seven: Plan) -> None:
    """R-DATA-6: generated deterministically from the seed."""
    again = Plan(seed=7, first_year=FIRST, last_year=LAST)
    assert _documents(again, 12) == _documents(seven, 12)
    other = _documents(Plan(seed=8, first_year=FIRST, last_year=LAST), 12)
    assert {doc.idensua for doc in other}.isdisjoint(doc.idensua for doc in _documents(seven, 12))
    other_subjects = Plan(seed=8, first_year=FIRST, last_year=LAST).subjects(12)
    assert [s.siren for s in seven.subjects(12)] != [s.siren for s in other_subjects]


def test_a_subject_does_not_depend_on_how_many_are_generated(seven: Plan) -> None:
    assert seven.subjects(50)[:5] == seven.subjects(5)


def test_every_catalogue_code_is_planned_and_has_a_body() -> None:
    planned = {
        *(code for codes in plan.REGIME_CODES.values() for code in codes),
        *plan.EVERY_SUBJECT_CODES,
        *(code for group in plan.ROTATING_CODES for code in group),
    }
    assert planned == CODES
    assert set(content.BUILDERS) == {entry.code for entry in CATALOGUE}


def test_inverted_years_are_refused() -> None:
    with pytest.raises(ValueError, match="first_year after last_year"):
        Plan(seed=1, first_year=2025, last_year=2024)


def test_french_amounts_and_a_valid_iban() -> None:
    assert content.euros(1234567.891) == "1\u00a0234\u00a0567,89\u00a0€"
    assert content.euros(0) == "0,00\u00a0€"
    iban = content.iban(random.Random(1)).replace(" ", "")
    numeric = "".join(str(int(char, 36)) for char in iban[4:] + iban[:4])
    assert iban.startswith("FR")
    assert len(iban) == 27
    assert int(numeric) % 97 == 1


def test_every_planned_document_has_a_body_even_on_a_leap_day(seven: Plan) -> None:
    """Bodies are drawn for any date: a one-off document of 29 February 2024 included."""
    documents = _documents(seven, 300)
    leap_day = dt.date(2024, 2, 29)
    for entry in CATALOGUE:
        sample = next(doc for doc in documents if doc.entry.code == entry.code)
        documents.append(dataclasses.replace(sample, periode_debut=leap_day, periode_fin=leap_day))
    for document in documents:
        lines = content.lines(document)
        assert lines, document.entry.code
        assert all(label and value for label, value in lines), document.entry.code
