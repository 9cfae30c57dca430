"""seed the document catalogue

The catalogue is reference data (R-DATA-1): it ships with the schema, so that every
database, whatever created it, serves the same codes. A later change to the catalogue is
a new migration. The rows are frozen here, not imported from the live code.

Revision ID: 3c1f0a9d2e71
Revises: 7b9e95178d8b
Create Date: 2026-11-27 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c1f0a9d2e71"
down_revision: str | None = "7b9e95178d8b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATALOGUE = [
    ("TVA-CA3", "declaratives", "Déclaration de TVA CA3", "mensuelle"),
    ("TVA-CA12", "declaratives", "Déclaration annuelle de TVA CA12", "annuelle"),
    ("IS-2065", "declaratives", "Déclaration de résultats IS n° 2065", "annuelle"),
    ("BIC-2031", "declaratives", "Déclaration de résultats BIC n° 2031", "annuelle"),
    ("BNC-2035", "declaratives", "Déclaration de résultats BNC n° 2035", "annuelle"),
    ("CVAE-1330", "declaratives", "Déclaration de valeur ajoutée n° 1330-CVAE", "annuelle"),
    ("RIB-PRO", "bancaires", "Relevé d'identité bancaire professionnel", "ponctuelle"),
    ("MANDAT-SEPA", "bancaires", "Mandat de prélèvement SEPA interentreprises", "ponctuelle"),
    ("ATT-REGULARITE", "creances", "Attestation de régularité fiscale", "ponctuelle"),
    ("ETAT-CREANCES", "creances", "État des créances fiscales", "trimestrielle"),
    ("AMR", "creances", "Avis de mise en recouvrement", "ponctuelle"),
    (
        "AVIS-CFE",
        "paiements",
        "Avis d'imposition de cotisation foncière des entreprises",
        "annuelle",
    ),
    (
        "ACOMPTE-IS",
        "paiements",
        "Relevé d'acompte d'impôt sur les sociétés n° 2571",
        "trimestrielle",
    ),
    ("HISTO-PAIEMENTS", "paiements", "Historique des paiements", "annuelle"),
    (
        "REMB-TVA-3519",
        "remboursements",
        "Demande de remboursement de crédit de TVA n° 3519",
        "trimestrielle",
    ),
    (
        "REMB-CIR",
        "remboursements",
        "Remboursement de crédit d'impôt recherche n° 2069-A",
        "annuelle",
    ),
    ("FICHE-OBLIG", "obligations_fiscales", "Fiche des obligations fiscales", "annuelle"),
    ("REGIME-TVA", "obligations_fiscales", "Attestation de régime de TVA", "ponctuelle"),
    ("MANDAT-EC", "habilitations", "Mandat de l'expert-comptable", "ponctuelle"),
    ("HABIL-EDI", "habilitations", "Habilitation d'un partenaire EDI", "ponctuelle"),
]

document_codes = sa.table(
    "document_codes",
    sa.column("code", sa.String),
    sa.column("famille", sa.String),
    sa.column("libelle", sa.String),
    sa.column("periodicite", sa.String),
)


def upgrade() -> None:
    op.bulk_insert(
        document_codes,
        [
            {"code": code, "famille": famille, "libelle": libelle, "periodicite": periodicite}
            for code, famille, libelle, periodicite in CATALOGUE
        ],
    )


def downgrade() -> None:
    codes = [row[0] for row in CATALOGUE]
    op.execute(document_codes.delete().where(document_codes.c.code.in_(codes)))
