"""Versioned terms of use (R-SQ-6, CGU §14; acceptance at the request, R-HAB-1).

The terms of each environment (sandbox: CGU BAS; production: CGU PROD) are versioned
texts. The package ships v2023-11 of both (``ensu/compliance/cgu/``, published on
22/11/2023), loaded by :func:`ensure_builtin_terms`. A new version is published with the
date it applies from (:func:`publish_terms`): every consumer organisation of that
environment is told in writing; each organisation's acceptance is recorded with its
version (:func:`accept_terms`). An organisation that has not accepted the version in
force past its date is reminded every :data:`REMINDER_EVERY_DAYS` days by the clock
(:func:`remind`), and :func:`terms_status` tells the portal what to show it.

The shipped versions are the baseline every existing organisation accepted at its
request: nobody is notified of them nor reminded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import resources

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from ensu import clock
from ensu.accounts.principal import Actor, ActorKind
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.compliance import notices
from ensu.compliance.errors import NotFound, Refused
from ensu.compliance.models import TermsAcceptance, TermsVersion
from ensu.compliance.notices import fr_date
from ensu.compliance.schemas import TermsStatus, TermsView
from ensu.config import Environment
from ensu.consumers import service as consumers
from ensu.consumers.models import TeleserviceStatus

#: The texts shipped with the package: (environment, version, file, date of publication).
BUILTIN_VERSION = "v2023-11"
BUILTIN_DATE = dt.date(2023, 11, 22)
BUILTIN_FILES = {
    Environment.SANDBOX: "cgu-bas-ensu-documents-v2023-11.txt",
    Environment.PRODUCTION: "cgu-prod-ensu-documents-v2023-11.md",
}
REMINDER_EVERY_DAYS = 30
NAMES = {Environment.SANDBOX: "bac à sable", Environment.PRODUCTION: "production"}


def _view(row: TermsVersion) -> TermsView:
    return TermsView(
        id=row.id,
        environment=row.environment,
        version=row.version,
        effective_on=row.effective_on,
        sha256=row.sha256,
        builtin=row.builtin,
    )


def builtin_text(environment: Environment) -> str:
    """The shipped v2023-11 text of ``environment``."""
    folder = resources.files("ensu.compliance") / "cgu"
    return (folder / BUILTIN_FILES[environment]).read_text(encoding="utf-8")


async def ensure_builtin_terms(*, session: AsyncSession, now: dt.datetime | None = None) -> None:
    """Load the shipped versions once (idempotent)."""
    for environment in Environment:
        found = await session.scalar(
            select(TermsVersion.id).where(
                TermsVersion.environment == environment, TermsVersion.version == BUILTIN_VERSION
            )
        )
        if found is not None:
            continue
        text = builtin_text(environment)
        session.add(
            TermsVersion(
                environment=environment,
                version=BUILTIN_VERSION,
                effective_on=BUILTIN_DATE,
                text=text,
                sha256=hashlib.sha256(text.encode()).hexdigest(),
                builtin=True,
                published_by="package",
                published_at=now or clock.now(),
            )
        )
    await session.flush()


async def versions(
    *, session: AsyncSession, environment: Environment | None = None
) -> list[TermsView]:
    await ensure_builtin_terms(session=session)
    statement = (
        select(TermsVersion)
        .options(defer(TermsVersion.text))  # 40 kB each: the list never needs it
        .order_by(TermsVersion.effective_on, TermsVersion.id)
    )
    if environment is not None:
        statement = statement.where(TermsVersion.environment == environment)
    return [_view(row) for row in await session.scalars(statement)]


async def terms_in_force(
    *, session: AsyncSession, environment: Environment, today: dt.date | None = None
) -> TermsView:
    """The latest version whose date has come."""
    day = today or clock.today_paris()
    applicable = [
        version
        for version in await versions(session=session, environment=environment)
        if version.effective_on <= day
    ]
    return applicable[-1]


async def text_of(*, session: AsyncSession, environment: Environment, version: str) -> str:
    row = await _version(session, environment, version)
    return row.text


async def _version(session: AsyncSession, environment: Environment, version: str) -> TermsVersion:
    await ensure_builtin_terms(session=session)
    row = await session.scalar(
        select(TermsVersion).where(
            TermsVersion.environment == environment, TermsVersion.version == version
        )
    )
    if row is None:
        raise NotFound(f"version inconnue des CGU ({environment.value}) : {version}")
    return row


async def _organisations(session: AsyncSession, environment: Environment) -> dict[str, list[str]]:
    """Each consumer organisation of ``environment`` (SIRET) and the addresses of its
    téléservices' technical contacts and responsables de traitement."""
    found: dict[str, list[str]] = {}
    for view in await consumers.list_teleservices(session=session, environment=environment):
        if view.status is TeleserviceStatus.REVOKED:
            continue
        emails = await notices.contacts(session=session, id_teleservice=view.id_teleservice)
        found.setdefault(view.organisation_siret, [])
        found[view.organisation_siret].extend(
            e for e in emails if e not in found[view.organisation_siret]
        )
    return found


async def publish_terms(
    *,
    session: AsyncSession,
    environment: Environment,
    version: str,
    text: str,
    effective_on: dt.date,
    actor: Actor,
    now: dt.datetime | None = None,
) -> TermsView:
    """Publish a new version applying from ``effective_on``, and notify every consumer
    organisation of ``environment`` in writing (R-SQ-6)."""
    version, text = version.strip(), text.strip()
    if not version or not text:
        raise Refused("une version des CGU a un numéro et un texte")
    moment = now or clock.now()
    await ensure_builtin_terms(session=session, now=moment)
    taken = await session.scalar(
        select(TermsVersion.id).where(
            TermsVersion.environment == environment, TermsVersion.version == version
        )
    )
    if taken is not None:
        raise Refused(f"la version {version} des CGU ({environment.value}) existe déjà")
    latest = await terms_in_force(session=session, environment=environment, today=dt.date.max)
    if effective_on <= latest.effective_on:
        raise Refused(f"la version {version} doit s'appliquer après la {latest.version}")
    row = TermsVersion(
        environment=environment,
        version=version,
        effective_on=effective_on,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        builtin=False,
        published_by=actor.label,
        published_at=moment,
    )
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.COMPLIANCE_TERMS_PUBLISHED,
        actor=actor.label,
        details={
            "environment": environment.value,
            "version": version,
            "effective_on": effective_on.isoformat(),
            "sha256": row.sha256,
        },
    )
    for siret, emails in (await _organisations(session, environment)).items():
        await notices.write(
            session=session,
            key=f"terms:{row.id}:published:{siret}",
            kind="terms",
            recipients=emails,
            subject=f"Nouvelle version des CGU de l'API ENSU Documents ({version})",
            body=(
                f"Bonjour,\n\nUne nouvelle version ({version}) des conditions générales"
                f" d'utilisation de l'API ENSU Documents ({NAMES[environment]}) s'applique à"
                f" compter du {fr_date(effective_on)} (CGU §14). Merci d'en prendre connaissance"
                " et de l'accepter au nom de votre organisation sur le portail."
            ),
            now=moment,
            organisation_siret=siret,
        )
    return _view(row)


async def accept_terms(
    *,
    session: AsyncSession,
    organisation_siret: str,
    environment: Environment,
    version: str,
    actor: Actor,
    now: dt.datetime | None = None,
) -> TermsStatus:
    """Record the organisation's acceptance of ``version`` (idempotent; R-SQ-6)."""
    if actor.kind is ActorKind.APPLICANT and not actor.acts_for(organisation_siret):
        raise Refused("on n'accepte les CGU qu'au nom de sa propre organisation")
    moment = now or clock.now()
    row = await _version(session, environment, version)
    found = await session.scalar(
        select(TermsAcceptance.id).where(
            TermsAcceptance.organisation_siret == organisation_siret,
            TermsAcceptance.terms_version_id == row.id,
        )
    )
    if found is None:
        session.add(
            TermsAcceptance(
                organisation_siret=organisation_siret,
                terms_version_id=row.id,
                version=row.version,
                accepted_by=actor.label,
                accepted_at=moment,
            )
        )
        await session.flush()
        await audit.record_event(
            session=session,
            tag=EventTag.COMPLIANCE_TERMS_ACCEPTED,
            actor=actor.label,
            details={
                "siret": organisation_siret,
                "environment": environment.value,
                "version": row.version,
                "sha256": row.sha256,
            },
        )
    return await _status(session, organisation_siret, environment, clock.legal_date(moment))


async def _status(
    session: AsyncSession, siret: str, environment: Environment, today: dt.date
) -> TermsStatus:
    in_force = await terms_in_force(session=session, environment=environment, today=today)
    accepted = await session.execute(
        select(TermsAcceptance.version, TermsAcceptance.accepted_at)
        .join(TermsVersion, TermsVersion.id == TermsAcceptance.terms_version_id)
        .where(TermsAcceptance.organisation_siret == siret, TermsVersion.environment == environment)
        .order_by(TermsVersion.effective_on.desc())
        .limit(1)
    )
    latest = accepted.first()
    return TermsStatus(
        environment=environment,
        in_force=in_force,
        accepted_version=latest[0] if latest else None,
        accepted_at=latest[1] if latest else None,
    )


async def terms_status(
    *, session: AsyncSession, organisation_siret: str, today: dt.date | None = None
) -> list[TermsStatus]:
    """For each environment the organisation exchanges in: the version in force and the
    latest it accepted (the portal shows a version to accept when not ``up_to_date``)."""
    day = today or clock.today_paris()
    environments = sorted(
        {
            view.environment
            for view in await consumers.list_teleservices(
                session=session, organisation_siret=organisation_siret
            )
            if view.status is not TeleserviceStatus.REVOKED
        }
    )
    return [await _status(session, organisation_siret, env, day) for env in environments]


async def remind(*, session: AsyncSession, today: dt.date, now: dt.datetime) -> dict[str, int]:
    """The clock's daily pass: remind the organisations that have not accepted the
    published version in force (every 30 days from its date)."""
    await ensure_builtin_terms(session=session, now=now)
    reminded = 0
    for environment in Environment:
        in_force = await terms_in_force(session=session, environment=environment, today=today)
        if in_force.builtin:
            continue
        period = (today - in_force.effective_on).days // REMINDER_EVERY_DAYS
        for siret, emails in (await _organisations(session, environment)).items():
            status = await _status(session, siret, environment, today)
            if status.up_to_date:
                continue
            reminded += await notices.write(
                session=session,
                key=f"terms:{in_force.id}:reminder:{period}:{siret}",
                kind="terms",
                recipients=emails,
                subject=f"Rappel : CGU {in_force.version} à accepter",
                body=(
                    f"Bonjour,\n\nLa version {in_force.version} des conditions générales"
                    f" d'utilisation de l'API ENSU Documents ({NAMES[environment]})"
                    f" s'applique depuis le {fr_date(in_force.effective_on)} et votre"
                    " organisation ne l'a pas encore acceptée. Merci de l'accepter sur le"
                    " portail."
                ),
                now=now,
                organisation_siret=siret,
            )
    return {"reminders": reminded}
