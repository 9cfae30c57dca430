"""Validation *is* provisioning (R-HAB-4): the stage's téléservice, made or updated
through ``consumers.service`` (never its tables), and the mail to the technical contact.

What the téléservice gets from the request:

- environment: the request's stage. A sandbox téléservice is refused by a production
  deployment and the reverse (403 ``910004``: the gateway and the token endpoint compare
  the téléservice's and the token's environment with ``ENSU_ENVIRONMENT``);
- certificate: the applicant's PEM, checked (:mod:`.certificates`; in production signed
  by a CA the edge trusts), or, in the sandbox, the development CA's certificate for the
  applicant's CSR;
- perimeter and authorised period (``perimetre``), IP allowlist and token method
  (``acces_technique``), contacts (``contacts``, through ``set_contacts``);
- quota: the sandbox's default (50, CGU BAS §9.2); in production the requested volumetry
  when above the default, as a decision of the validating instructor with the request's
  justification (R-Q-2), else the default;
- validity: from the production date (production) or today.

A client secret (``client_secret_basic``) is sealed with the app's secret key until the
applicant reads it once (:func:`seal`, :func:`unseal`); it never goes by mail.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.config import Environment, Settings
from ensu.consumers import quota as quotas
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod, ContactRole, TeleserviceStatus
from ensu.consumers.schemas import DEFAULT_QUOTAS, CertificateRef, Contact
from ensu.habilitations import certificates
from ensu.habilitations.errors import HabilitationError, InvalidRequestData, ProvisioningFailed
from ensu.habilitations.models import HabilitationRequest
from ensu.habilitations.schemas import (
    Contacts,
    Notice,
    Perimeter,
    ProductionDate,
    TechnicalAccess,
    Volumetry,
    parse_block,
)
from ensu.pki import service as pki

_SEAL_LABEL = b"ensu habilitations: client secret awaiting its one reading"


@dataclass(frozen=True, slots=True)
class Provisioned:
    """The stage's téléservice after validation."""

    id_teleservice: str
    client_id: str
    created: bool
    client_secret: str | None = field(repr=False)
    issued_certificate_pem: str | None
    thumbprint: str


def check_stage_certificate(
    settings: Settings, request: HabilitationRequest, *, now: dt.datetime
) -> CertificateRef | x509.CertificateSigningRequest:
    """The applicant's certificate checked for the stage (production: a trusted CA), or
    their CSR (sandbox only); :class:`InvalidRequestData` otherwise."""
    access = parse_block("acces_technique", request.data["acces_technique"])
    assert isinstance(access, TechnicalAccess)
    if access.certificat_pem is not None:
        production = request.stage is Environment.PRODUCTION
        trusted = certificates.trusted_cas(settings.pki_dir_path) if production else None
        return certificates.check_certificate(access.certificat_pem, now=now, trusted=trusted)
    assert access.csr_pem is not None  # the block holds exactly one
    if request.stage is Environment.PRODUCTION:
        raise InvalidRequestData(
            {"acces_technique.csr_pem": "en production, joignez un certificat (PEM)"}
        )
    return certificates.check_csr(access.csr_pem)


def stage_certificate(
    settings: Settings, request: HabilitationRequest, *, now: dt.datetime
) -> tuple[CertificateRef, str | None]:
    """The certificate to register, and the PEM the development CA issued from a CSR."""
    checked = check_stage_certificate(settings, request, now=now)
    if isinstance(checked, CertificateRef):
        return checked, None
    try:
        issued = pki.sign_csr(
            directory=settings.pki_dir_path,
            csr=checked,
            name=f"demande-{request.id}",
            organisation=request.organisation_name,
            now=now,
        )
    except pki.PkiError as error:
        raise ProvisioningFailed(f"le certificat n'a pas pu être émis : {error}") from None
    pem = issued.public_bytes(Encoding.PEM).decode("ascii")
    return CertificateRef.from_pem(pem), pem


def _quota(
    request: HabilitationRequest, decided_by: str
) -> tuple[int | None, quotas.QuotaGrant | None]:
    if request.stage is Environment.SANDBOX:
        return None, None
    volumetry = parse_block("volumetrie", request.data["volumetrie"])
    assert isinstance(volumetry, Volumetry)
    if volumetry.appels_par_minute <= DEFAULT_QUOTAS[Environment.PRODUCTION]:
        return None, None
    justification = quotas.QuotaJustification(
        load_peaks=volumetry.pics_de_charge,
        files_count=volumetry.nombre_dossiers,
        periodicity=volumetry.periodicite,
    )
    grant = quotas.QuotaGrant(decided_by=decided_by, justification=justification)
    return volumetry.appels_par_minute, grant


def _valid_from(request: HabilitationRequest, now: dt.datetime) -> dt.date:
    today = clock.legal_date(now)
    if request.stage is Environment.SANDBOX:
        return today
    block = parse_block("mise_en_production", request.data["mise_en_production"])
    assert isinstance(block, ProductionDate)
    return max(today, block.date_mise_en_production)


def _contacts(request: HabilitationRequest) -> list[Contact]:
    block = parse_block("contacts", request.data["contacts"])
    assert isinstance(block, Contacts)
    people = {
        ContactRole.TECHNIQUE: block.contact_technique,
        ContactRole.RESPONSABLE_TRAITEMENT: block.responsable_traitement,
        ContactRole.DPO: block.delegue_protection_donnees,
    }
    return [Contact(role=role, name=p.nom, email=p.email) for role, p in people.items()]


async def provision(
    *,
    session: AsyncSession,
    settings: Settings,
    request: HabilitationRequest,
    decided_by: str,
    actor: str,
    now: dt.datetime,
) -> Provisioned:
    """Create the stage's téléservice, or update the one a reopened request already has."""
    reference, issued = stage_certificate(settings, request, now=now)
    perimeter = parse_block("perimetre", request.data["perimetre"])
    access = parse_block("acces_technique", request.data["acces_technique"])
    name = str(request.data["informations"]["intitule"])
    assert isinstance(perimeter, Perimeter)
    assert isinstance(access, TechnicalAccess)
    per_minute, grant = _quota(request, decided_by)
    try:
        await consumers.ensure_organisation(
            session=session,
            siret=request.organisation_siret,
            name=request.organisation_name,
            actor=actor,
        )
        if request.id_teleservice is None:
            created = await consumers.create_teleservice(
                session=session,
                organisation_siret=request.organisation_siret,
                name=name,
                environment=request.stage,
                certificates=[reference],
                period_start=perimeter.periode_debut,
                period_end=perimeter.periode_fin,
                families=perimeter.familles,
                codes=perimeter.codes,
                networks=list(access.reseaux),
                auth_method=access.methode_authentification,
                valid_from=_valid_from(request, now),
                quota_per_minute=per_minute,
                quota_decision=grant,
                actor=actor,
                now=now,
            )
            outcome = Provisioned(
                id_teleservice=created.id_teleservice,
                client_id=created.client_id,
                created=True,
                client_secret=created.client_secret,
                issued_certificate_pem=issued,
                thumbprint=reference.thumbprint,
            )
        else:
            outcome = await _update(
                session,
                request=request,
                perimeter=perimeter,
                access=access,
                reference=reference,
                issued=issued,
                per_minute=per_minute,
                grant=grant,
                actor=actor,
                now=now,
            )
        await consumers.set_contacts(
            session=session,
            id_teleservice=outcome.id_teleservice,
            contacts=_contacts(request),
            actor=actor,
            now=now,
        )
    except consumers.ConsumerError as error:
        raise ProvisioningFailed(f"le téléservice n'a pas pu être créé : {error}") from None
    return outcome


async def _update(
    session: AsyncSession,
    *,
    request: HabilitationRequest,
    perimeter: Perimeter,
    access: TechnicalAccess,
    reference: CertificateRef,
    issued: str | None,
    per_minute: int | None,
    grant: quotas.QuotaGrant | None,
    actor: str,
    now: dt.datetime,
) -> Provisioned:
    assert request.id_teleservice is not None
    view = await consumers.update_teleservice(
        session=session,
        id_teleservice=request.id_teleservice,
        name=str(request.data["informations"]["intitule"]),
        families=perimeter.familles,
        codes=perimeter.codes,
        period_start=perimeter.periode_debut,
        period_end=perimeter.periode_fin,
        networks=list(access.reseaux),
        actor=actor,
        now=now,
    )
    if view.status is not TeleserviceStatus.ACTIVE:
        raise ProvisioningFailed(f"le téléservice {view.id_teleservice} n'est pas actif")
    if reference.thumbprint not in view.thumbprints:
        await consumers.replace_certificates(
            session=session,
            id_teleservice=view.id_teleservice,
            certificates=[reference],
            actor=actor,
            now=now,
        )
    wanted = per_minute or DEFAULT_QUOTAS[request.stage]
    if wanted != view.quota_per_minute:
        await quotas.decide_quota(
            session=session,
            id_teleservice=view.id_teleservice,
            per_minute=wanted,
            decided_by=grant.decided_by if grant else actor,
            justification=grant.justification if grant else quotas.QuotaJustification(),
            actor=actor,
            now=now,
        )
    if access.methode_authentification is not view.auth_method:
        raise ProvisioningFailed("la méthode d'authentification ne peut pas changer ici")
    return Provisioned(
        id_teleservice=view.id_teleservice,
        client_id=view.client_id,
        created=False,
        client_secret=None,
        issued_certificate_pem=issued,
        thumbprint=reference.thumbprint,
    )


async def end_teleservice(
    *, session: AsyncSession, id_teleservice: str, actor: str, reason: str, now: dt.datetime
) -> None:
    """Revoke the téléservice of a revoked habilitation, at once (no token, no data)."""
    view = await consumers.get_by_id_teleservice(session=session, id_teleservice=id_teleservice)
    if view is None or view.status is TeleserviceStatus.REVOKED:
        return
    await consumers.revoke(
        session=session, id_teleservice=id_teleservice, actor=actor, reason=reason, now=now
    )


def notice(
    settings: Settings,
    request: HabilitationRequest,
    *,
    id_teleservice: str,
    client_id: str,
    thumbprint: str,
    auth_method: AuthMethod,
    secret_pending: bool,
    issued_certificate_pem: str | None,
) -> Notice:
    """The mail to the technical contact: the means of access, never a secret (R-HAB-4)."""
    contact = request.data["contacts"]["contact_technique"]
    stage = "bac à sable" if request.stage is Environment.SANDBOX else "production"
    lines = [
        f"Bonjour {contact['nom']},",
        "",
        f"La demande d'habilitation n° {request.id} ({request.data['informations']['intitule']})"
        f" est validée pour l'environnement {stage}. Vos moyens d'accès :",
        "",
        f"  ID_Teleservice : {id_teleservice}",
        f"  client_id      : {client_id}",
        f"  authentification au point /token : {auth_method.value}",
        f"  certificat enregistré (x5t#S256) : {thumbprint}",
        f"  point d'accès : {settings.issuer}/token et {settings.audience}",
        "",
    ]
    if secret_pending:
        lines += [
            "Le secret client ne vous est pas envoyé par courriel : le demandeur le lit",
            "une seule fois sur le portail, dans la demande.",
            "",
        ]
    if issued_certificate_pem is not None:
        lines += [
            "Votre certificat, émis pour votre demande de certificat :",
            "",
            issued_certificate_pem,
        ]
    lines.append("La DGFIP — API ENSU DOCUMENTS")
    return Notice(
        request_id=request.id,
        to=(str(contact["email"]),),
        subject=f"API ENSU DOCUMENTS : accès {stage} ouvert (demande n° {request.id})",
        body="\n".join(lines),
    )


def _seal_key(settings: Settings) -> bytes:
    return hashlib.sha256(_SEAL_LABEL + settings.secret_key.get_secret_value().encode()).digest()


def seal(settings: Settings, secret: str) -> str:
    """The secret encrypted (AES-256-GCM) under a key derived from ``ENSU_SECRET_KEY``."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_seal_key(settings)).encrypt(nonce, secret.encode(), _SEAL_LABEL)
    return base64.b64encode(nonce + sealed).decode("ascii")


def unseal(settings: Settings, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(_seal_key(settings)).decrypt(raw[:12], raw[12:], _SEAL_LABEL).decode()
    except InvalidTag:
        raise HabilitationError("le secret ne peut plus être lu (clé du serveur changée)") from None
