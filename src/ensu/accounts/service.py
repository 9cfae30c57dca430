"""The accounts feature's logic: people, sign-in, sessions (R-HAB-1, R-HAB-2).

Keyword-only async functions over an ``AsyncSession``; they never commit (the caller owns
the transaction) and journal every sign-in, failure and change through
:func:`ensu.audit.service.record_event`. Sign-in steps *return* a
:class:`~ensu.accounts.schemas.SignInResult` instead of raising, so that the caller
commits the failure's record and the throttle's count with the refusal.

- applicants sign up themselves (name, e-mail, password, their organisation's SIRET,
  Luhn-checked) and sign in with their password;
- staff are created by an operator (``ensu staff create``) with a role and a TOTP
  secret, and sign in with their password *then* a code (RFC 6238), never accepted twice;
- a session is a stored row keyed by the hash of the cookie's token, rotated at each
  step of sign-in (session fixation), expiring after :data:`IDLE` without a request and
  at most :data:`LIFETIME` after sign-in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.accounts import passwords, throttle, totp
from ensu.accounts.errors import InvalidAccountData, NotAllowed, UnknownPerson
from ensu.accounts.models import Person, PortalSession, SessionStage
from ensu.accounts.principal import Actor, ActorKind, StaffRole
from ensu.accounts.schemas import (
    OpenedSession,
    PersonView,
    SessionView,
    SignInResult,
    StaffCreated,
)
from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.consumers.credentials import is_valid_email, is_valid_siret

__all__ = [
    "IDLE",
    "LIFETIME",
    "change_password",
    "check_password",
    "check_second_factor",
    "close_session",
    "create_staff",
    "current_code",
    "find_person",
    "list_people",
    "load_session",
    "open_session",
    "reset_totp",
    "set_active",
    "set_role",
    "sign_up",
]

#: A signed-in session ends after this long without a request...
IDLE = dt.timedelta(minutes=30)
#: ... and this long after sign-in in any case.
LIFETIME = dt.timedelta(hours=12)
#: A visitor's session (the CSRF token of the sign-in and sign-up forms).
ANONYMOUS_LIFETIME = dt.timedelta(hours=2)
#: Between the password and the TOTP code.
SECOND_FACTOR_LIFETIME = dt.timedelta(minutes=5)
#: ``last_seen_at`` is written at most this often (one write a minute, not per page).
TOUCH_EVERY = dt.timedelta(minutes=1)

REFUSED = "Adresse électronique ou mot de passe incorrect."
BAD_CODE = "Code de vérification incorrect ou expiré."
REPLAYED_CODE = "Ce code a déjà été utilisé : attendez le code suivant de votre application."


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or clock.now()


def _view(row: Person) -> PersonView:
    return PersonView(
        id=row.id,
        kind=row.kind,
        email=row.email,
        name=row.name,
        organisation_siret=row.organisation_siret,
        role=row.role,
        active=row.active,
        created_at=clock.as_utc(row.created_at),
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def _by_email(session: AsyncSession, email: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.email == normalise_email(email)))


async def find_person(*, session: AsyncSession, email: str) -> PersonView | None:
    row = await _by_email(session, email)
    return _view(row) if row is not None else None


# -- creating people ---------------------------------------------------------------------


async def _new_person_problems(
    session: AsyncSession, name: str, email: str, password: str
) -> dict[str, str]:
    """What refuses a new account, field by field (French, for the form)."""
    problems: dict[str, str] = {}
    if not name.strip():
        problems["name"] = "Indiquez votre nom et votre prénom."
    elif len(name.strip()) > 200:
        problems["name"] = "Le nom doit contenir au plus 200 caractères."
    if not email.strip():
        problems["email"] = "Indiquez votre adresse électronique."
    elif not is_valid_email(normalise_email(email)):
        problems["email"] = (
            "Indiquez une adresse électronique valide, par exemple prenom.nom@exemple.fr."
        )
    elif await _by_email(session, email) is not None:
        problems["email"] = "Un compte existe déjà avec cette adresse électronique."
    weak = passwords.problem(password)
    if weak:
        problems["password"] = weak
    return problems


async def sign_up(
    *,
    session: AsyncSession,
    name: str,
    email: str,
    password: str,
    organisation_siret: str,
    now: dt.datetime | None = None,
) -> PersonView:
    """An applicant's own account, for the organisation ``organisation_siret`` (R-HAB-1).

    Raises :class:`InvalidAccountData` with one French message per refused field.
    """
    siret = organisation_siret.replace(" ", "").strip()
    problems = await _new_person_problems(session, name, email, password)
    if not siret:
        problems["organisation_siret"] = "Indiquez le SIRET de votre organisation."
    elif not is_valid_siret(siret):
        problems["organisation_siret"] = (
            "Le SIRET doit contenir 14 chiffres et sa clé de contrôle (Luhn) doit être valide."
        )
    if problems:
        raise InvalidAccountData(problems)
    row = await _add_person(
        session,
        kind=ActorKind.APPLICANT,
        name=name,
        email=email,
        password_hash=await passwords.hash_password(password),
        organisation_siret=siret,
        now=_now(now),
    )
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_APPLICANT_SIGNED_UP,
        actor=f"applicant:{row.email}",
        details={"person_id": row.id, "siret": siret},
    )
    return _view(row)


async def _add_person(
    session: AsyncSession,
    *,
    kind: ActorKind,
    name: str,
    email: str,
    password_hash: str,
    now: dt.datetime,
    organisation_siret: str | None = None,
    role: StaffRole | None = None,
    totp_secret: str | None = None,
) -> Person:
    row = Person(
        kind=kind,
        email=normalise_email(email),
        name=name.strip(),
        password_hash=password_hash,
        organisation_siret=organisation_siret,
        role=role,
        totp_secret=totp_secret,
        active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def create_staff(
    *,
    session: AsyncSession,
    name: str,
    email: str,
    role: StaffRole,
    password: str,
    actor: str,
    now: dt.datetime | None = None,
) -> StaffCreated:
    """A staff member with ``role`` and a fresh TOTP secret, returned once (to enrol)."""
    problems = await _new_person_problems(session, name, email, password)
    if problems:
        raise InvalidAccountData(problems)
    secret = totp.new_secret()
    row = await _add_person(
        session,
        kind=ActorKind.STAFF,
        name=name,
        email=email,
        password_hash=await passwords.hash_password(password),
        role=role,
        totp_secret=secret,
        now=_now(now),
    )
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_STAFF_CREATED,
        actor=actor,
        details={"person_id": row.id, "email": row.email, "role": role.value},
    )
    return StaffCreated(
        person=_view(row),
        totp_secret=secret,
        provisioning_uri=totp.provisioning_uri(secret, row.email),
    )


async def reset_totp(
    *, session: AsyncSession, email: str, actor: str, now: dt.datetime | None = None
) -> StaffCreated:
    """A new TOTP secret for a staff member (a lost phone); the old one stops working."""
    row = await _by_email(session, email)
    if row is None or row.kind is not ActorKind.STAFF:
        raise UnknownPerson(f"aucun agent avec l'adresse {email}")
    secret = totp.new_secret()
    row.totp_secret, row.totp_last_step, row.updated_at = secret, None, _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_TOTP_RESET,
        actor=actor,
        details={"person_id": row.id, "email": row.email},
    )
    return StaffCreated(
        person=_view(row),
        totp_secret=secret,
        provisioning_uri=totp.provisioning_uri(secret, row.email),
    )


async def current_code(*, session: AsyncSession, email: str) -> str:
    """The TOTP code of a staff member now (``ensu staff totp``, development only)."""
    row = await _by_email(session, email)
    if row is None or row.totp_secret is None:
        raise UnknownPerson(f"aucun agent avec l'adresse {email}")
    return totp.code_at(row.totp_secret, clock.time())


# -- managing people (admins) -------------------------------------------------------------


async def list_people(*, session: AsyncSession, kind: ActorKind) -> list[PersonView]:
    """Applicants or staff, by name."""
    rows = await session.scalars(select(Person).where(Person.kind == kind).order_by(Person.name))
    return [_view(row) for row in rows]


async def _managed(session: AsyncSession, person_id: int, actor: Actor) -> Person:
    """The person an admin changes; never the admin themselves (no lock-out by mistake)."""
    if not actor.is_staff(StaffRole.ADMIN):
        raise NotAllowed("seul un administrateur gère les comptes")
    row = await session.get(Person, person_id)
    if row is None:
        raise UnknownPerson(f"aucun compte {person_id}")
    if row.id == actor.person_id:
        raise NotAllowed("un administrateur ne modifie pas son propre compte")
    return row


async def set_role(
    *,
    session: AsyncSession,
    person_id: int,
    role: StaffRole,
    actor: Actor,
    now: dt.datetime | None = None,
) -> PersonView:
    """An admin gives a staff member another role (R-HAB-2)."""
    row = await _managed(session, person_id, actor)
    if row.kind is not ActorKind.STAFF:
        raise NotAllowed("seuls les agents ont un rôle")
    previous, row.role, row.updated_at = row.role, role, _now(now)
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_STAFF_ROLE_CHANGED,
        actor=actor.label,
        details={
            "person_id": row.id,
            "email": row.email,
            "from": previous.value if previous else None,
            "to": role.value,
        },
    )
    return _view(row)


async def set_active(
    *,
    session: AsyncSession,
    person_id: int,
    active: bool,
    actor: Actor,
    now: dt.datetime | None = None,
) -> PersonView:
    """An admin closes or reopens an account; closing ends its sessions at once."""
    row = await _managed(session, person_id, actor)
    row.active, row.updated_at = active, _now(now)
    if not active:
        await session.execute(delete(PortalSession).where(PortalSession.person_id == row.id))
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_PERSON_REACTIVATED
        if active
        else EventTag.ACCOUNTS_PERSON_DEACTIVATED,
        actor=actor.label,
        details={"person_id": row.id, "email": row.email},
    )
    return _view(row)


# -- signing in --------------------------------------------------------------------------


async def _refuse(
    session: AsyncSession,
    *,
    account: str,
    address: str,
    reason: str,
    message: str,
    now: dt.datetime,
) -> SignInResult:
    await throttle.note_failure(session, account=account, address=address, now=now)
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_SIGN_IN_FAILED,
        actor=f"visitor:{address}",
        details={"email": account, "address": address, "reason": reason},
    )
    return SignInResult(person=None, message=message)


async def _throttled(
    session: AsyncSession, *, account: str, address: str, now: dt.datetime
) -> SignInResult | None:
    wait = await throttle.retry_after(session, account=account, address=address, now=now)
    if not wait:
        return None
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_SIGN_IN_THROTTLED,
        actor=f"visitor:{address}",
        details={"email": account, "address": address, "retry_after": int(wait)},
    )
    minutes = max(1, round(wait / 60))
    return SignInResult(
        person=None,
        message=(
            "Trop de tentatives de connexion infructueuses. "
            f"Réessayez dans {minutes} minute{'s' if minutes > 1 else ''}."
        ),
        retry_after=wait,
    )


async def check_password(
    *,
    session: AsyncSession,
    email: str,
    password: str,
    address: str,
    now: dt.datetime | None = None,
) -> SignInResult:
    """The first step of sign-in: throttle, then the password (Argon2id).

    An applicant is then signed in; staff still need :func:`check_second_factor`.
    """
    moment, account = _now(now), normalise_email(email)
    refused = await _throttled(session, account=account, address=address, now=moment)
    if refused is not None:
        return refused
    row = await _by_email(session, account)
    matches = await passwords.verify_password(row.password_hash if row else None, password)
    if row is None or not matches:
        reason = "unknown_account" if row is None else "bad_password"
        return await _refuse(
            session, account=account, address=address, reason=reason, message=REFUSED, now=moment
        )
    if not row.active:
        return await _refuse(
            session,
            account=account,
            address=address,
            reason="inactive",
            message=REFUSED,
            now=moment,
        )
    view = _view(row)
    if view.kind is ActorKind.APPLICANT:
        await _succeeded(session, view=view, address=address, step="password")
    return SignInResult(person=view)


async def _succeeded(session: AsyncSession, *, view: PersonView, address: str, step: str) -> None:
    await throttle.clear_account(session, account=view.email)
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_SIGN_IN_SUCCEEDED,
        actor=view.actor.label,
        details={"person_id": view.id, "address": address, "factors": step},
    )


async def check_second_factor(
    *,
    session: AsyncSession,
    person_id: int,
    code: str,
    address: str,
    now: dt.datetime | None = None,
) -> SignInResult:
    """The second step for staff: a TOTP code (RFC 6238) of a step later than the last
    accepted one. The step is written with a compare-and-set, so that two requests racing
    with the same code cannot both pass."""
    moment = _now(now)
    row = await session.get(Person, person_id)
    if row is None or row.totp_secret is None or not row.active:
        return SignInResult(person=None, message=BAD_CODE)
    account = row.email
    refused = await _throttled(session, account=account, address=address, now=moment)
    if refused is not None:
        return refused
    step = totp.matching_step(row.totp_secret, code, moment.timestamp())
    if step is None:
        return await _refuse(
            session,
            account=account,
            address=address,
            reason="bad_code",
            message=BAD_CODE,
            now=moment,
        )
    claimed = await session.execute(
        update(Person)
        .where(
            Person.id == person_id,
            (Person.totp_last_step.is_(None)) | (Person.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return await _refuse(
            session,
            account=account,
            address=address,
            reason="replayed_code",
            message=REPLAYED_CODE,
            now=moment,
        )
    view = _view(row)
    await _succeeded(session, view=view, address=address, step="password+totp")
    return SignInResult(person=view)


async def change_password(
    *,
    session: AsyncSession,
    person_id: int,
    current: str,
    new: str,
    now: dt.datetime | None = None,
) -> None:
    """A person changes their password; the current one is required."""
    row = await session.get(Person, person_id)
    if row is None:
        raise UnknownPerson(f"aucun compte {person_id}")
    problems: dict[str, str] = {}
    if not await passwords.verify_password(row.password_hash, current):
        problems["current_password"] = "Le mot de passe actuel est incorrect."  # noqa: S105
    weak = passwords.problem(new)
    if weak:
        problems["new_password"] = weak
    if problems:
        raise InvalidAccountData(problems)
    row.password_hash, row.updated_at = await passwords.hash_password(new), _now(now)
    # Every session of the person ends: a stolen one does not outlive the change.
    await session.execute(delete(PortalSession).where(PortalSession.person_id == row.id))
    await session.flush()
    await audit.record_event(
        session=session,
        tag=EventTag.ACCOUNTS_PASSWORD_CHANGED,
        actor=_view(row).actor.label,
        details={"person_id": row.id},
    )


# -- sessions ----------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_LIFETIMES = {
    SessionStage.ANONYMOUS: ANONYMOUS_LIFETIME,
    SessionStage.SECOND_FACTOR: SECOND_FACTOR_LIFETIME,
    SessionStage.SIGNED_IN: LIFETIME,
}


async def open_session(
    *,
    session: AsyncSession,
    stage: SessionStage,
    address: str,
    person: PersonView | None = None,
    replaces: str | None = None,
    now: dt.datetime | None = None,
) -> OpenedSession:
    """A new session (new token, new CSRF token); ``replaces``, the session it rotates,
    is deleted. Expired sessions are purged on the way."""
    if (person is None) != (stage is SessionStage.ANONYMOUS):
        raise ValueError("a person's session is not anonymous, and the reverse")
    moment = _now(now)
    await session.execute(delete(PortalSession).where(PortalSession.expires_at <= moment))
    if replaces is not None:
        await session.execute(delete(PortalSession).where(PortalSession.id == replaces))
    token = secrets.token_urlsafe(32)
    row = PortalSession(
        id=_digest(token),
        person_id=person.id if person else None,
        stage=stage,
        csrf_token=secrets.token_urlsafe(32),
        address=address[:64],
        created_at=moment,
        last_seen_at=moment,
        expires_at=moment + _LIFETIMES[stage],
    )
    session.add(row)
    await session.flush()
    view = SessionView(
        id=row.id, stage=stage, csrf_token=row.csrf_token, person=person, expires_at=row.expires_at
    )
    return OpenedSession(token=token, view=view)


async def load_session(
    *, session: AsyncSession, token: str, now: dt.datetime | None = None
) -> SessionView | None:
    """The live session of a cookie's ``token``, or ``None`` (unknown, expired, idle for
    longer than :data:`IDLE`, or its person deactivated)."""
    if not token or len(token) > 128:
        return None
    moment = _now(now)
    row = await session.get(PortalSession, _digest(token))
    if row is None or clock.as_utc(row.expires_at) <= moment:
        return None
    person = await session.get(Person, row.person_id) if row.person_id is not None else None
    if row.person_id is not None and (person is None or not person.active):
        return None
    if row.stage is SessionStage.SIGNED_IN and clock.as_utc(row.last_seen_at) + IDLE <= moment:
        return None
    if moment - clock.as_utc(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = moment
    return SessionView(
        id=row.id,
        stage=row.stage,
        csrf_token=row.csrf_token,
        person=_view(person) if person is not None else None,
        expires_at=clock.as_utc(row.expires_at),
    )


async def close_session(*, session: AsyncSession, view: SessionView, address: str) -> None:
    """Sign out: the session row is deleted (the cookie then opens nothing)."""
    await session.execute(delete(PortalSession).where(PortalSession.id == view.id))
    if view.person is not None:
        await audit.record_event(
            session=session,
            tag=EventTag.ACCOUNTS_SESSION_CLOSED,
            actor=view.person.actor.label,
            details={"person_id": view.person.id, "address": address},
        )
