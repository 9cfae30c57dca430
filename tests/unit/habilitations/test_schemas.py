"""The blocks of the form and their French messages (R-HAB-1, R-HAB-3, R-SEC-1, R-Q-2)."""

from __future__ import annotations

from typing import Any

import pytest

from ensu.config import Environment
from ensu.habilitations.errors import InvalidRequestData
from ensu.habilitations.schemas import (
    BLOCKS,
    GROUP_1,
    GROUP_2,
    SecurityCommitment,
    blocks_of,
    check_siret,
    missing_blocks,
    validate_block,
)
from tests.support.habilitations import production_blocks, sandbox_blocks

SANDBOX = Environment.SANDBOX


def _errors(key: str, values: dict[str, Any], stage: Environment = SANDBOX) -> dict[str, str]:
    with pytest.raises(InvalidRequestData) as refused:
        validate_block(stage, key, values)
    return refused.value.errors


def test_complete_blocks_pass() -> None:
    import datetime as dt  # noqa: PLC0415

    for key, values in sandbox_blocks().items():
        validate_block(SANDBOX, key, values)
    for key, values in production_blocks(
        homologation_sha256="a" * 64, start=dt.date(2030, 1, 1)
    ).items():
        validate_block(Environment.PRODUCTION, key, values)


def test_the_production_blocks_belong_to_production_only() -> None:
    assert [b.key for b in blocks_of(SANDBOX)] == [
        "informations",
        "perimetre",
        "donnees_personnelles",
        "cadre_juridique",
        "contacts",
        "volumetrie",
        "acces_technique",
        "cgu",
    ]
    assert len(blocks_of(Environment.PRODUCTION)) == len(BLOCKS)
    assert _errors("recette", {}) == {"recette": "bloc inconnu pour cette étape"}
    assert [b.key for b in missing_blocks(SANDBOX, {"informations": {}})][:1] == ["perimetre"]


def test_retention_above_36_months_needs_a_justification() -> None:
    base = sandbox_blocks()["donnees_personnelles"]
    validate_block(SANDBOX, "donnees_personnelles", dict(base, duree_conservation_mois=36))
    errors = _errors("donnees_personnelles", dict(base, duree_conservation_mois=37))
    assert "36 mois" in errors["donnees_personnelles"]
    validate_block(
        SANDBOX,
        "donnees_personnelles",
        dict(base, duree_conservation_mois=60, justification_duree="Prescription fiscale."),
    )
    assert _errors("donnees_personnelles", dict(base, duree_conservation_mois="douze")) == {
        "donnees_personnelles.duree_conservation_mois": "nombre entier attendu"
    }


def test_volumetry_above_500_needs_r_q_2_s_justification() -> None:
    validate_block(SANDBOX, "volumetrie", {"appels_par_minute": 500})
    assert "pics de charge" in _errors("volumetrie", {"appels_par_minute": 501})["volumetrie"]
    validate_block(
        SANDBOX,
        "volumetrie",
        {
            "appels_par_minute": 900,
            "pics_de_charge": "mai",
            "nombre_dossiers": 3,
            "periodicite": "an",
        },
    )


def test_contacts_e_mails_and_phones_are_checked() -> None:
    contacts = sandbox_blocks()["contacts"]
    contacts["dpo_wrong"] = None
    errors = _errors("contacts", contacts)
    assert errors == {"contacts.dpo_wrong": "champ inconnu"}
    contacts = sandbox_blocks()["contacts"]
    contacts["contact_technique"] = {"nom": "Tess", "email": "tess@", "telephone": "abc"}
    errors = _errors("contacts", contacts)
    assert errors == {
        "contacts.contact_technique.email": "adresse électronique invalide",
        "contacts.contact_technique.telephone": "numéro de téléphone invalide",
    }
    contacts["contact_technique"] = {
        "nom": "Tess",
        "email": "tess@example.fr",
        "telephone": "+33 1 23 45 67 89",
    }
    validate_block(SANDBOX, "contacts", contacts)


def test_dates_and_perimeter() -> None:
    assert _errors(
        "perimetre",
        {"familles": ["declaratives"], "periode_debut": "2024-13-01", "periode_fin": "2025-01-01"},
    ) == {"perimetre.periode_debut": "date invalide (AAAA-MM-JJ)"}
    errors = _errors(
        "perimetre", {"familles": ["x"], "periode_debut": "2024-01-01", "periode_fin": "2025-01-01"}
    )
    assert errors == {"perimetre.familles": "familles inconnues : x"}
    errors = _errors("perimetre", {"periode_debut": "2025-01-01", "periode_fin": "2024-01-01"})
    assert "famille ou un code" in errors["perimetre"]


def test_legal_framework_by_url_or_pdf() -> None:
    assert "PDF" in _errors("cadre_juridique", {"nature": "Loi"})["cadre_juridique"]
    assert _errors("cadre_juridique", {"nature": "Loi", "url": "javascript:alert(1)"}) == {
        "cadre_juridique.url": "adresse web invalide (https://…)"
    }


def test_terms_accepted_with_a_known_version() -> None:
    assert _errors("cgu", {"acceptees": False, "version": "CGU BAS ENSU DOC v.2023-11"}) == {
        "cgu.acceptees": "l'acceptation des conditions générales d'utilisation est requise"
    }
    assert "inconnue" in _errors("cgu", {"acceptees": True, "version": "v0"})["cgu.version"]


def test_the_security_questionnaire_decides_and_recommends() -> None:
    """R-SEC-1: group 1 decides directly, group 2 yields recommendations."""
    yes_1 = {question.value: True for question in GROUP_1}
    answers_2 = {question.value: True for question in GROUP_2}
    answers_2["correctifs"] = False
    block = validate_block(
        Environment.PRODUCTION,
        "engagement_securite",
        {"type": "questionnaire", "questionnaire": {"groupe_1": yes_1, "groupe_2": answers_2}},
    )
    commitment = SecurityCommitment.model_validate(block)
    assert commitment.questionnaire is not None
    assert commitment.questionnaire.recommendations == [
        "Appliquer les correctifs de sécurité sous 30 jours."
    ]
    no_1 = dict(yes_1, cle_protegee=False)
    errors = _errors(
        "engagement_securite",
        {"type": "questionnaire", "questionnaire": {"groupe_1": no_1, "groupe_2": answers_2}},
        Environment.PRODUCTION,
    )
    assert "groupe 1" in errors["engagement_securite"]
    partial = {"type": "questionnaire", "questionnaire": {"groupe_1": yes_1, "groupe_2": {}}}
    assert (
        "toutes les questions"
        in _errors("engagement_securite", partial, Environment.PRODUCTION)[
            "engagement_securite.questionnaire"
        ]
    )


def test_homologation_dates_and_attestation() -> None:
    homologation = {
        "autorite_nom": "A",
        "autorite_fonction": "DGS",
        "date_debut": "2026-01-01",
        "date_fin": "2025-01-01",
        "document": "a" * 64,
        "provisoire": True,
    }
    errors = _errors(
        "engagement_securite",
        {"type": "homologation", "homologation": homologation},
        Environment.PRODUCTION,
    )
    assert errors == {
        "engagement_securite.homologation": "la fin de l'homologation doit suivre son début"
    }


def test_siret_luhn() -> None:
    assert check_siret("13000000000005") == "13000000000005"
    with pytest.raises(InvalidRequestData, match="Luhn"):
        check_siret("13000000000006")
