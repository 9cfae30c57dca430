"""The default *mention d'information* (R-CON-1): what data, from DGFIP, which period."""

from __future__ import annotations

import datetime as dt

from ensu.config import Environment
from ensu.consumers.mention import default_mention, french_date


def test_french_dates() -> None:
    assert french_date(dt.date(2020, 1, 1)) == "1er janvier 2020"
    assert french_date(dt.date(2030, 12, 31)) == "31 décembre 2030"
    assert french_date(dt.date(2024, 8, 15)) == "15 août 2024"


def test_mention_names_origin_perimeter_and_period() -> None:
    text = default_mention(
        organisation_name="Cabinet A",
        teleservice_name="Aides",
        environment=Environment.PRODUCTION,
        families=frozenset({"declaratives", "paiements"}),
        codes=frozenset({"TVA-CA3", "AMR"}),
        period_start=dt.date(2021, 1, 1),
        period_end=dt.date(2023, 12, 31),
    )
    assert "Direction générale des Finances publiques (DGFIP)" in text
    assert "« Aides » (Cabinet A)" in text
    assert "familles déclaratives et paiements" in text
    # TVA-CA3 is already in "déclaratives"; AMR (créances) is named on its own.
    assert "Avis de mise en recouvrement (AMR)" in text
    assert "TVA-CA3" not in text
    assert "du 1er janvier 2021 au 31 décembre 2023" in text
    assert "fictives" not in text


def test_sandbox_mention_says_the_data_are_fictive() -> None:
    text = default_mention(
        organisation_name="Org",
        teleservice_name="Test",
        environment=Environment.SANDBOX,
        families=frozenset(),
        codes=frozenset({"RIB-PRO"}),
        period_start=dt.date(2021, 1, 1),
        period_end=dt.date(2021, 12, 31),
    )
    assert "Relevé d'identité bancaire professionnel (RIB-PRO)" in text
    assert "famille" not in text
    assert "bac à sable : les données sont fictives" in text
