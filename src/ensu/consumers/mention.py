"""The default *mention d'information* of a téléservice (R-CON-1).

The consumer must show its users, before the exchange, the perimeter and origin of the
data in plain words (CGU §3.3); the API serves this text for each téléservice. The
default is generated from the perimeter; the habilitation may replace it.
"""

from __future__ import annotations

import datetime as dt

from ensu.config import Environment
from ensu.documents.catalogue import CATALOGUE

FAMILY_LABELS = {
    "declaratives": "déclaratives",
    "bancaires": "bancaires",
    "creances": "créances",
    "paiements": "paiements",
    "remboursements": "remboursements",
    "obligations_fiscales": "obligations fiscales",
    "habilitations": "habilitations",
}
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_LABELS = {entry.code: entry.libelle for entry in CATALOGUE}
_FAMILY_OF = {entry.code: entry.famille.value for entry in CATALOGUE}


def french_date(day: dt.date) -> str:
    """``1er janvier 2020``, ``31 décembre 2030``."""
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


def _enumerate(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " et " + items[-1]


def _documents(families: frozenset[str], codes: frozenset[str]) -> str:
    parts = []
    if families:
        labels = [FAMILY_LABELS.get(family, family) for family in sorted(families)]
        noun = "familles" if len(labels) > 1 else "famille"
        parts.append(f"les documents des {noun} {_enumerate(labels)}")
    extra = sorted(code for code in codes if _FAMILY_OF.get(code) not in families)
    if extra:
        parts.append(_enumerate([f"{_LABELS.get(code, code)} ({code})" for code in extra]))
    return " ainsi que ".join(parts)


def default_mention(
    *,
    organisation_name: str,
    teleservice_name: str,
    environment: Environment,
    families: frozenset[str],
    codes: frozenset[str],
    period_start: dt.date,
    period_end: dt.date,
) -> str:
    """A plain-French text: what data, from whom (DGFIP), for which period (R-CON-1)."""
    text = (
        f"Les informations présentées par le téléservice « {teleservice_name} » "
        f"({organisation_name}) proviennent de la Direction générale des Finances "
        "publiques (DGFIP), qui les transmet par l'API ENSU Documents. "
        f"Elles portent uniquement sur {_documents(families, codes)}, "
        f"pour la période du {french_date(period_start)} au {french_date(period_end)}. "
        "Seules les données nécessaires au traitement de votre demande sont consultées."
    )
    if environment is Environment.SANDBOX:
        text += " Environnement bac à sable : les données sont fictives."
    return text
