"""The published catalogue of document codes, seeded for every family (R-DATA-1).

The codes are realistic (they follow the forms French companies file or receive) but the
list is ours: the real catalogue is DGFIP's to publish. Seeding is idempotent: an entry
that exists is updated to the label and periodicity below.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.documents.models import DocumentCode, Family, Periodicity


class CatalogueEntry(NamedTuple):
    code: str
    famille: Family
    libelle: str
    periodicite: Periodicity


F, P = Family, Periodicity

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry("TVA-CA3", F.DECLARATIVES, "Déclaration de TVA CA3", P.MENSUELLE),
    CatalogueEntry("TVA-CA12", F.DECLARATIVES, "Déclaration annuelle de TVA CA12", P.ANNUELLE),
    CatalogueEntry("IS-2065", F.DECLARATIVES, "Déclaration de résultats IS n° 2065", P.ANNUELLE),
    CatalogueEntry("BIC-2031", F.DECLARATIVES, "Déclaration de résultats BIC n° 2031", P.ANNUELLE),
    CatalogueEntry("BNC-2035", F.DECLARATIVES, "Déclaration de résultats BNC n° 2035", P.ANNUELLE),
    CatalogueEntry(
        "CVAE-1330", F.DECLARATIVES, "Déclaration de valeur ajoutée n° 1330-CVAE", P.ANNUELLE
    ),
    CatalogueEntry(
        "RIB-PRO", F.BANCAIRES, "Relevé d'identité bancaire professionnel", P.PONCTUELLE
    ),
    CatalogueEntry(
        "MANDAT-SEPA", F.BANCAIRES, "Mandat de prélèvement SEPA interentreprises", P.PONCTUELLE
    ),
    CatalogueEntry("ATT-REGULARITE", F.CREANCES, "Attestation de régularité fiscale", P.PONCTUELLE),
    CatalogueEntry("ETAT-CREANCES", F.CREANCES, "État des créances fiscales", P.TRIMESTRIELLE),
    CatalogueEntry("AMR", F.CREANCES, "Avis de mise en recouvrement", P.PONCTUELLE),
    CatalogueEntry(
        "AVIS-CFE",
        F.PAIEMENTS,
        "Avis d'imposition de cotisation foncière des entreprises",
        P.ANNUELLE,
    ),
    CatalogueEntry(
        "ACOMPTE-IS",
        F.PAIEMENTS,
        "Relevé d'acompte d'impôt sur les sociétés n° 2571",
        P.TRIMESTRIELLE,
    ),
    CatalogueEntry("HISTO-PAIEMENTS", F.PAIEMENTS, "Historique des paiements", P.ANNUELLE),
    CatalogueEntry(
        "REMB-TVA-3519",
        F.REMBOURSEMENTS,
        "Demande de remboursement de crédit de TVA n° 3519",
        P.TRIMESTRIELLE,
    ),
    CatalogueEntry(
        "REMB-CIR",
        F.REMBOURSEMENTS,
        "Remboursement de crédit d'impôt recherche n° 2069-A",
        P.ANNUELLE,
    ),
    CatalogueEntry(
        "FICHE-OBLIG", F.OBLIGATIONS_FISCALES, "Fiche des obligations fiscales", P.ANNUELLE
    ),
    CatalogueEntry(
        "REGIME-TVA", F.OBLIGATIONS_FISCALES, "Attestation de régime de TVA", P.PONCTUELLE
    ),
    CatalogueEntry("MANDAT-EC", F.HABILITATIONS, "Mandat de l'expert-comptable", P.PONCTUELLE),
    CatalogueEntry("HABIL-EDI", F.HABILITATIONS, "Habilitation d'un partenaire EDI", P.PONCTUELLE),
)

CODES = frozenset(entry.code for entry in CATALOGUE)


async def seed(*, session: AsyncSession) -> int:
    """Insert or update every catalogue entry; returns the number of entries."""
    for entry in CATALOGUE:
        await session.merge(DocumentCode(**entry._asdict()))
    return len(CATALOGUE)


async def load(*, session: AsyncSession) -> dict[str, CatalogueEntry]:
    """The catalogue as the database holds it, by code (read once at start-up)."""
    rows = await session.scalars(select(DocumentCode).order_by(DocumentCode.code))
    return {
        row.code: CatalogueEntry(
            row.code, Family(row.famille), row.libelle, Periodicity(row.periodicite)
        )
        for row in rows
    }
