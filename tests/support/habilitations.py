"""Habilitation requests for the tests: actors, complete blocks, a request in any state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.config import Environment, Settings
from ensu.habilitations import service as habilitations
from ensu.habilitations.schemas import TERMS_VERSIONS, Decision, RequestView
from tests.support.certs import make_certificate

SIRET = "13000000000005"
OTHER_SIRET = "21750001600019"
APPLICANT = Actor(
    kind=ActorKind.APPLICANT,
    label="applicant:alice",
    person_id=1,
    email="alice@example.fr",
    organisation_siret=SIRET,
)
OTHER_APPLICANT = Actor(
    kind=ActorKind.APPLICANT,
    label="applicant:mallory",
    person_id=2,
    email="mallory@example.fr",
    organisation_siret=OTHER_SIRET,
)


def staff(role: StaffRole) -> Actor:
    return Actor(kind=ActorKind.STAFF, label=f"staff:{role.value}", person_id=10, role=role)


REPORTER = staff(StaffRole.REPORTER)
INSTRUCTOR = staff(StaffRole.INSTRUCTOR)
MANAGER = staff(StaffRole.MANAGER)
ANALYSIS = "Base légale vérifiée : CRPA L.114-8."
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
CERTIFICATE = make_certificate("teleservice-test")


def person(name: str) -> dict[str, str]:
    return {"nom": name, "email": f"{name.lower()}@example.fr", "fonction": "agent"}


def sandbox_blocks(
    *, certificate_pem: str | None = None, legal_sha256: str | None = None
) -> dict[str, dict[str, Any]]:
    """Every block of a sandbox request, valid."""
    legal: dict[str, Any] = {"nature": "Article L.114-8 du CRPA"}
    if legal_sha256:
        legal["document"] = legal_sha256
    else:
        legal["url"] = "https://www.legifrance.gouv.fr/codes/article_lc/LEGIARTI000031367358"
    return {
        "informations": {
            "intitule": "Aides aux entreprises",
            "description": "Instruction des demandes d'aides des entreprises du territoire.",
            "usage_donnees": "Vérifier la régularité fiscale du demandeur d'aide.",
            "services_destinataires": "Service des aides économiques",
        },
        "perimetre": {
            "familles": ["declaratives"],
            "periode_debut": "2020-01-01",
            "periode_fin": "2030-12-31",
        },
        "donnees_personnelles": {
            "destinataires_donnees": "Les instructeurs du service",
            "duree_conservation_mois": 24,
            "formalites_accomplies": True,
        },
        "cadre_juridique": legal,
        "contacts": {
            "responsable_traitement": person("Rose"),
            "delegue_protection_donnees": person("Denis"),
            "contact_technique": person("Tess"),
        },
        "volumetrie": {"appels_par_minute": 40},
        "acces_technique": {
            "certificat_pem": certificate_pem or CERTIFICATE.pem,
            "reseaux": ["127.0.0.0/8", "::1/128"],
        },
        "cgu": {"acceptees": True, "version": TERMS_VERSIONS[Environment.SANDBOX]},
    }


def production_blocks(*, homologation_sha256: str, start: dt.date) -> dict[str, dict[str, Any]]:
    """The production stage's own blocks, valid (R-HAB-3, R-SEC-1)."""
    return {
        "recette": {
            "confirmee": True,
            "date_fin": (start - dt.timedelta(days=1)).isoformat(),
            "resultats": "Recette conforme : 12 cas passants.",
        },
        "engagement_securite": {
            "type": "homologation",
            "homologation": {
                "autorite_nom": "Claire Autorité",
                "autorite_fonction": "Directrice générale des services",
                "date_debut": (start - dt.timedelta(days=30)).isoformat(),
                "date_fin": (start + dt.timedelta(days=3 * 365)).isoformat(),
                "reserves": "Aucune",
                "document": homologation_sha256,
            },
        },
        "textes_juridiques": {"derogation_secret_professionnel": "CRPA L.114-8 et R.114-9-4"},
        "mise_en_production": {"date_mise_en_production": start.isoformat()},
        "cgu": {"acceptees": True, "version": TERMS_VERSIONS[Environment.PRODUCTION]},
    }


async def filled_request(
    session: AsyncSession, *, actor: Actor = APPLICANT, **blocks: Any
) -> RequestView:
    """A sandbox draft with every block saved."""
    view = await habilitations.create_request(
        session=session, actor=actor, organisation_name="Région fictive"
    )
    for key, values in {**sandbox_blocks(), **blocks}.items():
        view = await habilitations.save_block(
            session=session, actor=actor, request_id=view.id, block=key, values=values
        )
    return view


async def submitted_request(session: AsyncSession, settings: Settings) -> RequestView:
    view = await filled_request(session)
    return await habilitations.submit(
        session=session, settings=settings, actor=APPLICANT, request_id=view.id
    )


async def submit_and_validate(
    session: AsyncSession, settings: Settings, request_id: int
) -> Decision:
    """The applicant submits, the instructor validates (with the legal analysis)."""
    await habilitations.submit(
        session=session, settings=settings, actor=APPLICANT, request_id=request_id
    )
    return await habilitations.validate(
        session=session,
        settings=settings,
        actor=INSTRUCTOR,
        request_id=request_id,
        legal_analysis=ANALYSIS,
    )


async def validated_request(session: AsyncSession, settings: Settings) -> RequestView:
    view = await filled_request(session)
    await submit_and_validate(session, settings, view.id)
    return await habilitations.get_request(session=session, actor=APPLICANT, request_id=view.id)


def ca_and_leaf(
    *, key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]:
    """A throwaway CA and a client certificate it signed (PEM)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = dt.datetime.now(dt.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = key or ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")]))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=300))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return ca, leaf_key, leaf.public_bytes(serialization.Encoding.PEM).decode("ascii")
