"""Tables of the consumers feature: organisations, téléservices and their certificates.

A téléservice is one use case of a *partenaire conventionné* (R-GW-3: one
``ID_Teleservice`` per use case) and, at the same time, its OAuth client (R-GW-4). The
perimeter (R-GW-5, R-DATA-5), the IP allowlist (R-GW-2), the quota (R-Q-1) and the
information text (R-CON-1) are columns of the same row, so that the gateway reads one
row; lists are JSON. Certificates get a child table because the gateway looks them up
by thumbprint (R-GW-1).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ensu.config import Environment
from ensu.db import Base, string_enum


class TeleserviceStatus(enum.StrEnum):
    """``revoked`` is final; ``suspended`` can be resumed (R-SEC-2, R-OPS-2)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class ContactRole(enum.StrEnum):
    """Whom the producer writes to about a téléservice (R-HAB-1, R-OPS-4).

    The technical contact receives the means of access (R-HAB-4) and, with the
    responsable de traitement, every notice of the compliance clock (R-SEC-2, R-SQ-4 to
    R-SQ-6); the DPO is told of personal-data breaches (R-OPS-3).
    """

    TECHNIQUE = "technique"
    RESPONSABLE_TRAITEMENT = "responsable_traitement"
    DPO = "dpo"


class AuthMethod(enum.StrEnum):
    """Client authentication at the token endpoint; the certificate is required by both."""

    TLS_CLIENT_AUTH = "tls_client_auth"  # RFC 8705 §2.1
    #: RFC 6749 §2.3.1, plus the certificate (the value names a method, not a password).
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105


class Organisation(Base):
    """A *partenaire conventionné*, identified by its SIRET (R-HAB-1)."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    siret: Mapped[str] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Teleservice(Base):
    """One use case: its technical identifier, OAuth client, perimeter and limits."""

    __tablename__ = "teleservices"
    __table_args__ = (
        CheckConstraint("period_start <= period_end", name="period_ordered"),
        CheckConstraint(
            "valid_until IS NULL OR valid_from <= valid_until", name="validity_ordered"
        ),
        CheckConstraint("quota_per_minute > 0", name="quota_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_teleservice: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    environment: Mapped[Environment] = mapped_column(string_enum(Environment, 16))
    status: Mapped[TeleserviceStatus] = mapped_column(string_enum(TeleserviceStatus, 16))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    auth_method: Mapped[AuthMethod] = mapped_column(string_enum(AuthMethod, 32))
    #: ``scrypt$n$r$p$salt$hash`` (see ``ensu.consumers.credentials``); never the secret.
    client_secret_hash: Mapped[str | None] = mapped_column(String(160))
    quota_per_minute: Mapped[int] = mapped_column(Integer)
    families: Mapped[list[str]] = mapped_column(JSON)
    codes: Mapped[list[str]] = mapped_column(JSON)
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    #: CIDR strings, e.g. ``["127.0.0.0/8", "::1/128"]`` (R-GW-2).
    networks: Mapped[list[str]] = mapped_column(JSON)
    mention_information: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    organisation: Mapped[Organisation] = relationship(lazy="raise")
    certificates: Mapped[list[TeleserviceCertificate]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="TeleserviceCertificate.id"
    )


class TeleserviceCertificate(Base):
    """A client certificate registered for a téléservice, by ``x5t#S256`` (RFC 8705 §3.1)."""

    __tablename__ = "teleservice_certificates"
    __table_args__ = (UniqueConstraint("teleservice_id", "thumbprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teleservice_id: Mapped[int] = mapped_column(ForeignKey("teleservices.id", ondelete="CASCADE"))
    thumbprint: Mapped[str] = mapped_column(String(43), index=True)
    subject: Mapped[str] = mapped_column(String(1024))


class TeleserviceContact(Base):
    """One contact of a téléservice, at most one per role (R-HAB-1, R-OPS-4)."""

    __tablename__ = "teleservice_contacts"
    __table_args__ = (UniqueConstraint("teleservice_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teleservice_id: Mapped[int] = mapped_column(
        ForeignKey("teleservices.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[ContactRole] = mapped_column(string_enum(ContactRole, 32))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class QuotaDecisionRecord(Base):
    """A producer's decision on a téléservice's quota, with its justification (R-Q-2).

    Append-only: the téléservice's ``quota_per_minute`` is the last decision's value. A
    quota above the environment's default needs the three justification fields.
    """

    __tablename__ = "quota_decisions"
    __table_args__ = (
        CheckConstraint("per_minute > 0", name="per_minute_positive"),
        CheckConstraint("files_count IS NULL OR files_count > 0", name="files_count_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teleservice_id: Mapped[int] = mapped_column(
        ForeignKey("teleservices.id", ondelete="CASCADE"), index=True
    )
    previous_per_minute: Mapped[int] = mapped_column(Integer)
    per_minute: Mapped[int] = mapped_column(Integer)
    #: Pics de charge: when and how high the calls peak.
    load_peaks: Mapped[str | None] = mapped_column(Text)
    #: Nombre de dossiers: how many files the use case processes.
    files_count: Mapped[int | None] = mapped_column(Integer)
    #: Périodicité: when the calls happen (daily batch, monthly campaign …).
    periodicity: Mapped[str | None] = mapped_column(Text)
    #: The producer's decider (name, role), as the decision states it.
    decided_by: Mapped[str] = mapped_column(String(200))
    #: Who recorded it (``cli:user``).
    recorded_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
