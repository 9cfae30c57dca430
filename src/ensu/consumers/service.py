"""The consumers feature's logic: organisations, téléservices, their credentials.

Keyword-only async functions over an ``AsyncSession``; they never commit (the caller owns
the transaction) and record their events through ``ensu.audit.service``. Readers get
:class:`~ensu.consumers.schemas.TeleserviceView`, built by one query path
(:func:`_views`) whichever key they look up by: ``client_id`` (token endpoint),
``ID_Teleservice`` (gateway, R-GW-3) or certificate thumbprint (gateway, R-GW-1).

Writers: the CLI today, the habilitation workflow later (R-HAB-4); the compliance clock
suspends (R-SEC-2, R-SEC-3) and incidents cut (R-OPS-2) through :func:`suspend` and
:func:`revoke`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence

import anyio.to_thread
from pydantic import ValidationError
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from ensu import clock
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.config import Environment
from ensu.consumers import credentials
from ensu.consumers import quota as quotas
from ensu.consumers.errors import (
    ConsumerError,
    InvalidConsumerData,
    InvalidTransition,
    JustificationMissing,
    NotFoundError,
)
from ensu.consumers.mention import default_mention
from ensu.consumers.models import (
    AuthMethod,
    ContactRole,
    Organisation,
    Teleservice,
    TeleserviceCertificate,
    TeleserviceContact,
    TeleserviceStatus,
)
from ensu.consumers.quota import QuotaJustification, decide_quota, quota_history
from ensu.consumers.schemas import (
    DEFAULT_NETWORKS,
    DEFAULT_QUOTAS,
    FAMILIES,
    CertificateRef,
    Contact,
    CreatedTeleservice,
    Network,
    OrganisationView,
    TeleserviceIn,
    TeleserviceView,
    codes_of_families,
    is_thumbprint,
)
from ensu.documents.catalogue import CODES

__all__ = [
    "ConsumerError",
    "InvalidConsumerData",
    "InvalidTransition",
    "JustificationMissing",
    "NotFoundError",
    "QuotaJustification",
    "check_client_secret",
    "contacts_of",
    "create_organisation",
    "create_teleservice",
    "decide_quota",
    "ensure_organisation",
    "find_by_thumbprint",
    "get_by_client_id",
    "get_by_id_teleservice",
    "lift_restriction",
    "list_teleservices",
    "load_view",
    "quota_history",
    "replace_certificates",
    "restrict",
    "resume",
    "revoke",
    "set_contacts",
    "set_perimeter",
    "suspend",
    "update_teleservice",
]


#: The status workflow: (action, from) -> to. ``revoked`` is final.
TRANSITIONS: dict[tuple[str, TeleserviceStatus], TeleserviceStatus] = {
    ("suspend", TeleserviceStatus.ACTIVE): TeleserviceStatus.SUSPENDED,
    ("resume", TeleserviceStatus.SUSPENDED): TeleserviceStatus.ACTIVE,
    ("revoke", TeleserviceStatus.ACTIVE): TeleserviceStatus.REVOKED,
    ("revoke", TeleserviceStatus.SUSPENDED): TeleserviceStatus.REVOKED,
}
_VERBS = {"suspend": "suspendre", "resume": "réactiver", "revoke": "révoquer"}
_STATES = {
    TeleserviceStatus.ACTIVE: "actif",
    TeleserviceStatus.SUSPENDED: "suspendu",
    TeleserviceStatus.REVOKED: "révoqué",
}
_TAGS = {
    "suspend": EventTag.CONSUMERS_TELESERVICE_SUSPENDED,
    "resume": EventTag.CONSUMERS_TELESERVICE_RESUMED,
    "revoke": EventTag.CONSUMERS_TELESERVICE_REVOKED,
}


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or clock.now()


# -- organisations ---------------------------------------------------------------------


async def _organisation(session: AsyncSession, siret: str) -> Organisation | None:
    return await session.scalar(select(Organisation).where(Organisation.siret == siret))


async def create_organisation(
    *, session: AsyncSession, siret: str, name: str, actor: str, now: dt.datetime | None = None
) -> OrganisationView:
    """Register a *partenaire conventionné* by SIRET (14 digits, Luhn-valid; R-HAB-1)."""
    name = name.strip()
    if not credentials.is_valid_siret(siret):
        raise InvalidConsumerData(f"SIRET invalide : {siret!r} (14 chiffres, clé de Luhn)")
    if not name or len(name) > 200:
        raise InvalidConsumerData("le nom de l'organisation doit faire de 1 à 200 caractères")
    if await _organisation(session, siret) is not None:
        raise InvalidConsumerData(f"l'organisation {siret} existe déjà")
    session.add(Organisation(siret=siret, name=name, created_at=_now(now)))
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_ORGANISATION_CREATED,
        actor=actor,
        details={"siret": siret, "name": name},
    )
    return OrganisationView(siret=siret, name=name)


async def ensure_organisation(
    *, session: AsyncSession, siret: str, name: str, actor: str
) -> OrganisationView:
    """The organisation with ``siret``, created with ``name`` if absent (name kept if not)."""
    found = await _organisation(session, siret)
    if found is not None:
        return OrganisationView(siret=found.siret, name=found.name)
    return await create_organisation(session=session, siret=siret, name=name, actor=actor)


# -- téléservices: creation ------------------------------------------------------------


def _validated(fields: dict[str, object]) -> TeleserviceIn:
    """``TeleserviceIn`` from keyword arguments; errors become one readable message."""
    try:
        return TeleserviceIn.model_validate(fields)
    except ValidationError as exc:
        messages = [
            f"{'.'.join(str(part) for part in error['loc']) or 'téléservice'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise InvalidConsumerData("; ".join(messages)) from None


async def _check_unique(session: AsyncSession, client_id: str, id_teleservice: str) -> None:
    taken = await session.scalar(
        select(Teleservice.id).where(
            (Teleservice.client_id == client_id) | (Teleservice.id_teleservice == id_teleservice)
        )
    )
    if taken is not None:
        raise InvalidConsumerData(
            f"client_id {client_id!r} ou ID_Teleservice {id_teleservice!r} déjà attribué"
        )


async def create_teleservice(
    *,
    session: AsyncSession,
    organisation_siret: str,
    name: str,
    environment: Environment,
    certificates: Sequence[CertificateRef],
    period_start: dt.date,
    period_end: dt.date,
    families: Iterable[str] = (),
    codes: Iterable[str] = (),
    networks: Sequence[str | Network] | None = None,
    auth_method: AuthMethod = AuthMethod.TLS_CLIENT_AUTH,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    quota_per_minute: int | None = None,
    quota_decision: quotas.QuotaGrant | None = None,
    client_id: str | None = None,
    id_teleservice: str | None = None,
    mention_information: str | None = None,
    actor: str,
    now: dt.datetime | None = None,
) -> CreatedTeleservice:
    """Create a téléservice (an APIM account, R-HAB-4) for an existing organisation.

    - ``certificates``: at least one (``CertificateRef.from_pem(pem)`` or a thumbprint and
      subject); the certificate is required at the token endpoint whatever the method.
    - perimeter: ``families`` and/or ``codes`` of the catalogue, and the authorised data
      period ``period_start``..``period_end`` (R-GW-5).
    - ``networks``: the IP allowlist in CIDR (R-GW-2); default loopback only.
    - ``quota_per_minute``: default 50 in the sandbox, 500 in production (R-Q-1). Above
      the default only with ``quota_decision``, the producer's decision (decider and
      justification), recorded as by :func:`ensu.consumers.quota.decide_quota`; without
      it :class:`JustificationMissing` (R-Q-2), whoever calls.
    - ``client_id`` and ``id_teleservice``: generated (opaque) unless given.
    - ``client_secret_basic`` generates a secret, returned here once; only its scrypt hash
      is stored.
    - ``mention_information``: default generated from the perimeter (R-CON-1).

    Raises :class:`InvalidConsumerData` or :class:`NotFoundError` (unknown organisation).
    """
    moment = _now(now)
    data = _validated(
        {
            "organisation_siret": organisation_siret,
            "name": name,
            "environment": environment,
            "certificates": tuple(certificates),
            "families": frozenset(families),
            "codes": frozenset(codes),
            "period_start": period_start,
            "period_end": period_end,
            "networks": tuple(networks) if networks is not None else DEFAULT_NETWORKS,
            "auth_method": auth_method,
            "valid_from": valid_from or clock.legal_date(moment),
            "valid_until": valid_until,
            "quota_per_minute": quota_per_minute,
            "client_id": client_id,
            "id_teleservice": id_teleservice,
            "mention_information": mention_information,
        }
    )
    default = DEFAULT_QUOTAS[data.environment]
    asked = data.quota_per_minute or default
    quotas.require_decision(environment=data.environment, per_minute=asked, grant=quota_decision)
    organisation = await _organisation(session, data.organisation_siret)
    if organisation is None:
        raise NotFoundError(f"organisation inconnue : {data.organisation_siret}")
    row, secret = await _new_row(data, organisation, moment)
    if quota_decision is not None:
        row.quota_per_minute = default  # the decision below moves it, on the record
    await _check_unique(session, row.client_id, row.id_teleservice)
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_CREATED,
        actor=actor,
        details=_summary(row, organisation),
    )
    if quota_decision is not None:
        await quotas.decide_quota(
            session=session,
            id_teleservice=row.id_teleservice,
            per_minute=asked,
            decided_by=quota_decision.decided_by,
            justification=quota_decision.justification,
            actor=actor,
            now=moment,
        )
    return CreatedTeleservice(
        client_id=row.client_id, id_teleservice=row.id_teleservice, client_secret=secret
    )


async def _new_row(
    data: TeleserviceIn, organisation: Organisation, moment: dt.datetime
) -> tuple[Teleservice, str | None]:
    secret = None
    secret_hash = None
    if data.auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        secret = credentials.new_client_secret()
        secret_hash = await anyio.to_thread.run_sync(credentials.hash_secret, secret)
    mention = data.mention_information or _default_mention(data, organisation)
    row = Teleservice(
        id_teleservice=data.id_teleservice or credentials.new_id_teleservice(),
        client_id=data.client_id or credentials.new_client_id(),
        organisation_id=organisation.id,
        name=data.name,
        environment=data.environment,
        status=TeleserviceStatus.ACTIVE,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        auth_method=data.auth_method,
        client_secret_hash=secret_hash,
        quota_per_minute=data.quota_per_minute or DEFAULT_QUOTAS[data.environment],
        families=sorted(data.families),
        codes=sorted(data.codes),
        period_start=data.period_start,
        period_end=data.period_end,
        networks=[str(network) for network in data.networks],
        mention_information=mention,
        created_at=moment,
        updated_at=moment,
        certificates=_certificate_rows(data.certificates),
    )
    return row, secret


def _default_mention(data: TeleserviceIn, organisation: Organisation) -> str:
    """The information text generated from the perimeter (R-CON-1)."""
    return default_mention(
        organisation_name=organisation.name,
        teleservice_name=data.name,
        environment=data.environment,
        families=data.families,
        codes=data.codes,
        period_start=data.period_start,
        period_end=data.period_end,
    )


def _certificate_rows(certificates: Iterable[CertificateRef]) -> list[TeleserviceCertificate]:
    unique = {ref.thumbprint: ref for ref in certificates}
    return [
        TeleserviceCertificate(thumbprint=ref.thumbprint, subject=ref.subject)
        for ref in unique.values()
    ]


def _summary(row: Teleservice, organisation: Organisation) -> dict[str, object]:
    """What the journal keeps of a creation: identifiers and perimeter, never a secret."""
    return {
        "id_teleservice": row.id_teleservice,
        "client_id": row.client_id,
        "siret": organisation.siret,
        "environment": row.environment.value,
        "auth_method": row.auth_method.value,
        "families": row.families,
        "codes": row.codes,
        "period": [row.period_start.isoformat(), row.period_end.isoformat()],
        "networks": row.networks,
        "thumbprints": [certificate.thumbprint for certificate in row.certificates],
        "quota_per_minute": row.quota_per_minute,
    }


# -- téléservices: status and certificates -----------------------------------------------


async def _row(session: AsyncSession, id_teleservice: str) -> Teleservice:
    row = await session.scalar(
        select(Teleservice)
        .options(joinedload(Teleservice.certificates))
        .where(Teleservice.id_teleservice == id_teleservice)
    )
    if row is None:
        raise NotFoundError(f"téléservice inconnu : {id_teleservice}")
    return row


async def _transition(
    session: AsyncSession,
    *,
    action: str,
    id_teleservice: str,
    actor: str,
    reason: str | None,
    now: dt.datetime | None,
) -> TeleserviceView:
    row = await _row(session, id_teleservice)
    target = TRANSITIONS.get((action, row.status))
    if target is None:
        raise InvalidTransition(
            f"impossible de {_VERBS[action]} le téléservice {id_teleservice} : "
            f"il est {_STATES[row.status]}"
        )
    previous, row.status, row.updated_at = row.status, target, _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=_TAGS[action],
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "client_id": row.client_id,
            "from": previous.value,
            "to": target.value,
            "reason": reason,
        },
    )
    return await _require_view(session, Teleservice.id_teleservice == id_teleservice)


async def suspend(
    *,
    session: AsyncSession,
    id_teleservice: str,
    actor: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Suspend an active téléservice: no token, no data until resumed (R-SEC-2, R-OPS-2)."""
    return await _transition(
        session,
        action="suspend",
        id_teleservice=id_teleservice,
        actor=actor,
        reason=reason,
        now=now,
    )


async def resume(
    *,
    session: AsyncSession,
    id_teleservice: str,
    actor: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Resume a suspended téléservice (after the cause is resolved, R-OPS-2)."""
    return await _transition(
        session, action="resume", id_teleservice=id_teleservice, actor=actor, reason=reason, now=now
    )


async def revoke(
    *,
    session: AsyncSession,
    id_teleservice: str,
    actor: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Revoke a téléservice for good (end of the legal basis, resiliation; R-SQ-5)."""
    return await _transition(
        session, action="revoke", id_teleservice=id_teleservice, actor=actor, reason=reason, now=now
    )


async def replace_certificates(
    *,
    session: AsyncSession,
    id_teleservice: str,
    certificates: Sequence[CertificateRef],
    actor: str,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Register exactly ``certificates`` for the téléservice (certificate renewal, R-GW-1).

    Tokens bound to a removed certificate stop working at the gateway, whose
    ``cnf.x5t#S256`` check needs the presented certificate (RFC 8705 §3).
    """
    if not certificates:
        raise InvalidConsumerData("au moins un certificat est requis")
    malformed = [ref.thumbprint for ref in certificates if not is_thumbprint(ref.thumbprint)]
    if malformed:
        raise InvalidConsumerData(f"empreintes x5t#S256 mal formées : {malformed}")
    row = await _row(session, id_teleservice)
    before = sorted(certificate.thumbprint for certificate in row.certificates)
    row.certificates = _certificate_rows(certificates)
    row.updated_at = _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_CERTIFICATES_REPLACED,
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "before": before,
            "after": sorted(ref.thumbprint for ref in certificates),
        },
    )
    return await _require_view(session, Teleservice.id_teleservice == id_teleservice)


async def update_teleservice(
    *,
    session: AsyncSession,
    id_teleservice: str,
    name: str,
    families: Iterable[str],
    codes: Iterable[str],
    period_start: dt.date,
    period_end: dt.date,
    networks: Sequence[str | Network],
    valid_from: dt.date | None = None,
    actor: str,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Set a téléservice's name, perimeter, authorised period and allowlist: the update a
    reopened and validated habilitation makes (R-HAB-2, R-HAB-4). Validated as at
    creation; the information text is generated again from the new perimeter (R-CON-1).
    Identifiers, status, certificates (:func:`replace_certificates`) and quota
    (``quota.decide_quota``) are not touched here."""
    row = await _row(session, id_teleservice)
    organisation = await session.get(Organisation, row.organisation_id)
    assert organisation is not None  # a foreign key
    data = _validated(
        {
            "organisation_siret": organisation.siret,
            "name": name,
            "environment": row.environment,
            "certificates": tuple(_to_view_refs(row)),
            "families": frozenset(families),
            "codes": frozenset(codes),
            "period_start": period_start,
            "period_end": period_end,
            "networks": tuple(networks),
            "valid_from": valid_from or row.valid_from,
            "valid_until": row.valid_until,
        }
    )
    row.name = data.name
    row.families, row.codes = sorted(data.families), sorted(data.codes)
    row.period_start, row.period_end = data.period_start, data.period_end
    row.networks = [str(network) for network in data.networks]
    row.valid_from = data.valid_from
    row.mention_information = _default_mention(data, organisation)
    row.updated_at = _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_UPDATED,
        actor=actor,
        details=_summary(row, organisation),
    )
    return await _require_view(session, Teleservice.id_teleservice == id_teleservice)


def _to_view_refs(row: Teleservice) -> list[CertificateRef]:
    return [CertificateRef(thumbprint=c.thumbprint, subject=c.subject) for c in row.certificates]


def _perimeter_problem(
    families: frozenset[str], codes: frozenset[str], period_start: dt.date, period_end: dt.date
) -> str | None:
    if not families and not codes:
        return "le périmètre doit compter au moins une famille ou un code de document"
    if families - FAMILIES:
        return f"familles inconnues : {', '.join(sorted(families - FAMILIES))}"
    if codes - CODES:
        return f"codes absents du catalogue : {', '.join(sorted(codes - CODES))}"
    if period_start > period_end:
        return "la période des données commence après sa fin"
    return None


async def set_perimeter(
    *,
    session: AsyncSession,
    id_teleservice: str,
    families: Iterable[str],
    codes: Iterable[str],
    period_start: dt.date,
    period_end: dt.date,
    actor: str,
    now: dt.datetime | None = None,
) -> TeleserviceView:
    """Set the perimeter (R-GW-5, R-DATA-5): families and codes of the catalogue and the
    authorised data period. A mention still the default one follows it (R-CON-1); a
    mention written by hand is kept. The gateway sees it within a second (its cache)."""
    wanted_families, wanted_codes = frozenset(families), frozenset(codes)
    problem = _perimeter_problem(wanted_families, wanted_codes, period_start, period_end)
    if problem:
        raise InvalidConsumerData(problem)
    row = await _row(session, id_teleservice)
    organisation = await session.get(Organisation, row.organisation_id)
    assert organisation is not None  # a foreign key

    def mention(fams: frozenset[str], cods: frozenset[str], start: dt.date, end: dt.date) -> str:
        return default_mention(
            organisation_name=organisation.name,
            teleservice_name=row.name,
            environment=row.environment,
            families=fams,
            codes=cods,
            period_start=start,
            period_end=end,
        )

    before = {
        "families": sorted(row.families),
        "codes": sorted(row.codes),
        "period": [row.period_start.isoformat(), row.period_end.isoformat()],
    }
    old = mention(frozenset(row.families), frozenset(row.codes), row.period_start, row.period_end)
    if row.mention_information == old:
        row.mention_information = mention(wanted_families, wanted_codes, period_start, period_end)
    row.families, row.codes = sorted(wanted_families), sorted(wanted_codes)
    row.period_start, row.period_end, row.updated_at = period_start, period_end, _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_PERIMETER_SET,
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "before": before,
            "after": {
                "families": row.families,
                "codes": row.codes,
                "period": [period_start.isoformat(), period_end.isoformat()],
            },
        },
    )
    return await _require_view(session, Teleservice.id_teleservice == id_teleservice)


# -- reading: one query path -------------------------------------------------------------


def _to_view(row: Teleservice) -> TeleserviceView:
    families = frozenset(row.families)
    codes = frozenset(row.codes)
    certificates = tuple(
        CertificateRef(thumbprint=cert.thumbprint, subject=cert.subject)
        for cert in row.certificates
    )
    return TeleserviceView(
        id_teleservice=row.id_teleservice,
        client_id=row.client_id,
        name=row.name,
        organisation_siret=row.organisation.siret,
        organisation_name=row.organisation.name,
        environment=row.environment,
        status=row.status,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        families=families,
        codes=codes,
        allowed_codes=codes | codes_of_families(families),
        period_start=row.period_start,
        period_end=row.period_end,
        networks=tuple(ipaddress.ip_network(network) for network in row.networks),
        thumbprints=frozenset(ref.thumbprint for ref in certificates),
        certificates=certificates,
        quota_per_minute=row.quota_per_minute,
        auth_method=row.auth_method,
        client_secret_hash=row.client_secret_hash,
        mention_information=row.mention_information,
        # SQLite hands back naive datetimes; every stored time is UTC.
        updated_at=row.updated_at.replace(tzinfo=row.updated_at.tzinfo or dt.UTC),
    )


async def _views(session: AsyncSession, *conditions: ColumnElement[bool]) -> list[TeleserviceView]:
    """The one query path: téléservices, organisation and certificates in one SELECT."""
    statement = (
        select(Teleservice)
        .options(
            joinedload(Teleservice.organisation, innerjoin=True),
            joinedload(Teleservice.certificates),
        )
        .where(*conditions)
        .order_by(Teleservice.id)
    )
    result = await session.scalars(statement)
    return [_to_view(row) for row in result.unique()]


async def _require_view(session: AsyncSession, condition: ColumnElement[bool]) -> TeleserviceView:
    views = await _views(session, condition)
    return views[0]


async def load_view(
    *, session: AsyncSession, client_id: str | None = None, id_teleservice: str | None = None
) -> TeleserviceView | None:
    """The téléservice by ``client_id`` or by ``id_teleservice`` (exactly one), or ``None``."""
    if (client_id is None) == (id_teleservice is None):
        raise ValueError("exactly one of client_id and id_teleservice")
    condition = (
        Teleservice.client_id == client_id
        if client_id is not None
        else Teleservice.id_teleservice == id_teleservice
    )
    views = await _views(session, condition)
    return views[0] if views else None


async def get_by_client_id(*, session: AsyncSession, client_id: str) -> TeleserviceView | None:
    """The téléservice whose OAuth client is ``client_id`` (token endpoint, R-GW-4)."""
    return await load_view(session=session, client_id=client_id)


async def get_by_id_teleservice(
    *, session: AsyncSession, id_teleservice: str
) -> TeleserviceView | None:
    """The téléservice named by the ``ID_Teleservice`` header (R-GW-3)."""
    return await load_view(session=session, id_teleservice=id_teleservice)


async def find_by_thumbprint(
    *, session: AsyncSession, thumbprint: str
) -> tuple[TeleserviceView, ...]:
    """Every téléservice that registered the certificate ``thumbprint`` (R-GW-1).

    One certificate may serve several téléservices of a partner; ``ID_Teleservice``
    then tells which one (R-GW-3). Empty: the certificate is not registered.
    """
    registered = select(TeleserviceCertificate.teleservice_id).where(
        TeleserviceCertificate.thumbprint == thumbprint
    )
    return tuple(await _views(session, Teleservice.id.in_(registered)))


async def list_teleservices(
    *,
    session: AsyncSession,
    environment: Environment | None = None,
    status: TeleserviceStatus | None = None,
    organisation_siret: str | None = None,
) -> list[TeleserviceView]:
    """Téléservices, optionally filtered, in creation order."""
    conditions: list[ColumnElement[bool]] = []
    if environment is not None:
        conditions.append(Teleservice.environment == environment)
    if status is not None:
        conditions.append(Teleservice.status == status)
    if organisation_siret is not None:
        conditions.append(Teleservice.organisation.has(Organisation.siret == organisation_siret))
    return await _views(session, *conditions)


async def check_client_secret(view: TeleserviceView | None, secret: str) -> bool:
    """True when ``secret`` is the téléservice's client secret (RFC 6749 §2.3.1).

    Constant-time, run in a worker thread (scrypt is deliberately slow), and as slow for an
    unknown client (``view`` ``None``) or one without secret as for a real one.
    """
    stored = view.client_secret_hash if view is not None else None
    return await anyio.to_thread.run_sync(credentials.verify_secret, secret, stored)


async def set_contacts(
    *,
    session: AsyncSession,
    id_teleservice: str,
    contacts: Iterable[Contact],
    actor: str,
    now: dt.datetime | None = None,
) -> list[Contact]:
    """Record the téléservice's contacts, one per role; roles not given are kept.

    The habilitation workflow records them from the request (R-HAB-1, R-HAB-4); the
    compliance clock, incidents and breaches write to them (R-SEC-2, R-OPS-2 to R-OPS-4).
    """
    given = {contact.role: contact for contact in contacts}
    row = await _row(session, id_teleservice)
    existing = {
        contact.role: contact
        for contact in await session.scalars(
            select(TeleserviceContact).where(TeleserviceContact.teleservice_id == row.id)
        )
    }
    stamp = _now(now)
    for role, contact in given.items():
        record = existing.get(role)
        if record is None:
            session.add(
                TeleserviceContact(
                    teleservice_id=row.id,
                    role=role,
                    name=contact.name,
                    email=contact.email,
                    updated_at=stamp,
                )
            )
        else:
            record.name, record.email, record.updated_at = contact.name, contact.email, stamp
    await session.flush()
    if given:
        await audit.record_event(
            session=session,
            tag=EventTag.CONSUMERS_TELESERVICE_CONTACTS_SET,
            actor=actor,
            details={
                "id_teleservice": id_teleservice,
                "roles": sorted(role.value for role in given),
            },
        )
    return await contacts_of(session=session, id_teleservice=id_teleservice)


async def contacts_of(
    *,
    session: AsyncSession,
    id_teleservice: str,
    roles: Iterable[ContactRole] | None = None,
) -> list[Contact]:
    """The téléservice's contacts (optionally of ``roles`` only), in the roles' order."""
    row = await _row(session, id_teleservice)
    wanted = set(ContactRole) if roles is None else set(roles)
    records = await session.scalars(
        select(TeleserviceContact).where(TeleserviceContact.teleservice_id == row.id)
    )
    order = list(ContactRole)
    found = [
        Contact(role=record.role, name=record.name, email=record.email)
        for record in records
        if record.role in wanted
    ]
    return sorted(found, key=lambda contact: order.index(contact.role))


# -- temporary restrictions (R-OPS-2) ----------------------------------------------------


def _perimeter(row: Teleservice) -> dict[str, object]:
    return {
        "quota_per_minute": row.quota_per_minute,
        "families": list(row.families),
        "codes": list(row.codes),
        "period_start": row.period_start.isoformat(),
        "period_end": row.period_end.isoformat(),
    }


async def restrict(
    *,
    session: AsyncSession,
    id_teleservice: str,
    actor: str,
    reason: str,
    quota_per_minute: int | None = None,
    codes: Iterable[str] | None = None,
    period_start: dt.date | None = None,
    period_end: dt.date | None = None,
    now: dt.datetime | None = None,
) -> dict[str, object]:
    """A temporary restriction during an incident (R-OPS-2, CGU §8 "restrictions
    temporaires d'accès"): a lower quota, fewer document codes, a shorter period, only
    ever narrower than today's. Returns what was there before, for
    :func:`lift_restriction`. The gateway applies it within a second (its view cache).
    """
    row = await _row(session, id_teleservice)
    before = _perimeter(row)
    allowed = set(row.codes) | codes_of_families(frozenset(row.families))
    narrowed = sorted(set(codes)) if codes is not None else None
    if narrowed is not None and (not narrowed or not set(narrowed) <= allowed):
        raise InvalidConsumerData(
            f"codes hors du périmètre actuel : {sorted(set(narrowed) - allowed) or 'aucun'}"
        )
    start = period_start or row.period_start
    end = period_end or row.period_end
    if start < row.period_start or end > row.period_end or start > end:
        raise InvalidConsumerData("la période restreinte doit rester dans la période actuelle")
    if quota_per_minute is not None:
        if not 0 < quota_per_minute < row.quota_per_minute:
            raise InvalidConsumerData(
                f"un quota restreint est inférieur à l'actuel ({row.quota_per_minute}/min)"
            )
        await quotas.decide_quota(
            session=session,
            id_teleservice=id_teleservice,
            per_minute=quota_per_minute,
            decided_by=actor,
            actor=actor,
            now=now,
        )
    if narrowed is not None:
        row.families, row.codes = [], narrowed
    row.period_start, row.period_end, row.updated_at = start, end, _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_RESTRICTED,
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "before": before,
            "after": _perimeter(row),
            "reason": reason[:200],
        },
    )
    return before


async def lift_restriction(
    *,
    session: AsyncSession,
    id_teleservice: str,
    previous: dict[str, object],
    actor: str,
    reason: str,
    now: dt.datetime | None = None,
) -> None:
    """Put back the perimeter and quota :func:`restrict` returned. A quota above the
    default comes back with the justification of the decision that had granted it."""
    row = await _row(session, id_teleservice)
    quota = int(str(previous["quota_per_minute"]))
    if quota != row.quota_per_minute:
        history = await quotas.quota_history(session=session, id_teleservice=id_teleservice)
        granted = next((d for d in reversed(history) if d.per_minute == quota), None)
        await quotas.decide_quota(
            session=session,
            id_teleservice=id_teleservice,
            per_minute=quota,
            decided_by=granted.decided_by if granted else actor,
            justification=granted.justification if granted else None,
            actor=actor,
            now=now,
        )
    row.families = [str(f) for f in previous["families"]]  # type: ignore[attr-defined]
    row.codes = [str(c) for c in previous["codes"]]  # type: ignore[attr-defined]
    row.period_start = dt.date.fromisoformat(str(previous["period_start"]))
    row.period_end = dt.date.fromisoformat(str(previous["period_end"]))
    row.updated_at = _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.CONSUMERS_TELESERVICE_RESTRICTION_LIFTED,
        actor=actor,
        details={
            "id_teleservice": id_teleservice,
            "after": _perimeter(row),
            "reason": reason[:200],
        },
    )
