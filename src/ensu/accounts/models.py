"""Tables of the accounts feature: people, their portal sessions, failed sign-ins.

- ``people``: applicants (one organisation each, by SIRET; R-HAB-1) and the producer's
  staff (a role, :class:`~ensu.accounts.principal.StaffRole`; a TOTP secret). Passwords
  are Argon2id hashes (:mod:`ensu.accounts.passwords`); ``totp_last_step`` is the RFC 6238
  time step of the last code accepted, so that no code is ever accepted twice.
- ``portal_sessions``: server-side sessions. The cookie holds a random token; the row is
  keyed by its SHA-256, so a copy of the table opens no session. Each row carries the
  synchroniser token of its forms (CSRF) and its stage (anonymous, waiting for the
  second factor, signed in).
- ``sign_in_failures``: one row per failed attempt, per account and per address, read by
  the throttle (:mod:`ensu.accounts.throttle`); rows older than its window are purged.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ensu.accounts.principal import ActorKind, StaffRole
from ensu.db import Base, string_enum


class SessionStage(enum.StrEnum):
    """Where a portal session stands: a visitor, a staff member between the password and
    the TOTP code, or a person signed in."""

    ANONYMOUS = "anonymous"
    SECOND_FACTOR = "second_factor"
    SIGNED_IN = "signed_in"


class FailureScope(enum.StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


class Person(Base):
    __tablename__ = "people"
    __table_args__ = (
        CheckConstraint("kind IN ('applicant', 'staff')", name="kind_is_a_person"),
        CheckConstraint(
            "(kind = 'staff' AND role IS NOT NULL AND organisation_siret IS NULL)"
            " OR (kind = 'applicant' AND role IS NULL AND organisation_siret IS NOT NULL)",
            name="staff_have_a_role_applicants_an_organisation",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ActorKind] = mapped_column(string_enum(ActorKind, 16))
    #: Lower-cased: one account per address, whatever the case typed.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(256))
    organisation_siret: Mapped[str | None] = mapped_column(String(14), index=True)
    role: Mapped[StaffRole | None] = mapped_column(string_enum(StaffRole, 16))
    #: RFC 4648 base32; required for staff (their second factor).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PortalSession(Base):
    __tablename__ = "portal_sessions"

    #: SHA-256 (hex) of the cookie's token: the token itself is never stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[SessionStage] = mapped_column(string_enum(SessionStage, 16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class SignInFailure(Base):
    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_scope_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[FailureScope] = mapped_column(string_enum(FailureScope, 16))
    key: Mapped[str] = mapped_column(String(254))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
