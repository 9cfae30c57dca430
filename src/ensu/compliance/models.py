"""Tables of the compliance clock (CGU §3.4, §6.8, §9.3, §13, §14).

Téléservices and organisations are the consumers feature's: these tables name them by
their public keys (``id_teleservice``, SIRET), not by foreign keys, so that the records
outlive nothing and block nothing, and the retention purge (R-TR-4) removes them on its
own schedule. Nothing here is written but through :mod:`ensu.compliance.service` and the
jobs of :mod:`ensu.compliance.jobs`.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ensu.config import Environment
from ensu.db import Base, string_enum


class CommitmentKind(enum.StrEnum):
    """CGU §3.4: an homologation attestation (RGS) or the security questionnaire."""

    HOMOLOGATION = "homologation"
    QUESTIONNAIRE = "questionnaire"


class CommitmentStatus(enum.StrEnum):
    """``submitted`` waits for the producer; ``validated`` is in force until a later
    validated one ``supersedes`` it; ``rejected`` never counted."""

    SUBMITTED = "submitted"
    VALIDATED = "validated"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


class SuspensionCause(enum.StrEnum):
    """Why the clock suspended a téléservice (R-SEC-2 to R-SEC-4)."""

    COMMITMENT = "commitment"
    RISK = "risk"


class Party(enum.StrEnum):
    """Who ends the exchange (CGU §14)."""

    CONSUMER = "consumer"
    PRODUCER = "producer"


class ResiliationKind(enum.StrEnum):
    """Two months' notice, a security cut, or the end of the legal basis (R-SQ-5)."""

    NOTICE = "notice"
    SECURITY = "security"
    LEGAL_BASIS = "legal_basis"


class SecurityCommitment(Base):
    """One attestation of a production téléservice's security level (R-SEC-1 to R-SEC-3).

    ``reference_date`` is the homologation's end of validity, or the questionnaire's
    date; ``deadline`` the date by which the next one is due (3 months before the end,
    3 years after the questionnaire).
    """

    __tablename__ = "compliance_commitments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_teleservice: Mapped[str] = mapped_column(String(64), index=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    kind: Mapped[CommitmentKind] = mapped_column(string_enum(CommitmentKind, 16))
    reference_date: Mapped[dt.date] = mapped_column(Date)
    deadline: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[CommitmentStatus] = mapped_column(string_enum(CommitmentStatus, 16))
    #: Reservations of the homologation, or "autorisation provisoire d'emploi" (R-SEC-1).
    reservations: Mapped[str | None] = mapped_column(Text)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    document_reference: Mapped[str | None] = mapped_column(String(200))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    validated_by: Mapped[str | None] = mapped_column(String(200))
    validated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CriticalRisk(Base):
    """A critical risk found by a manager (R-SEC-4): a resolution deadline, or a cut."""

    __tablename__ = "compliance_risks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_teleservice: Mapped[str] = mapped_column(String(64), index=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    description: Mapped[str] = mapped_column(Text)
    #: None: cut at once.
    resolution_deadline: Mapped[dt.date | None] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ClockSuspension(Base):
    """A suspension the clock made; lifted when its cause is cured. The téléservice is
    resumed only when none of its suspensions is open (another cause may remain)."""

    __tablename__ = "compliance_suspensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_teleservice: Mapped[str] = mapped_column(String(64), index=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    cause: Mapped[SuspensionCause] = mapped_column(string_enum(SuspensionCause, 16))
    cause_id: Mapped[int] = mapped_column(Integer)
    suspended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: ``True`` when this suspension changed the téléservice's status (it was active):
    #: the clock resumes only what it suspended itself, never an operator's suspension.
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Resiliation(Base):
    """The end of an exchange (R-SQ-5): asked, then effective on ``effective_on``."""

    __tablename__ = "compliance_resiliations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_teleservice: Mapped[str] = mapped_column(String(64), index=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    party: Mapped[Party] = mapped_column(string_enum(Party, 16))
    kind: Mapped[ResiliationKind] = mapped_column(string_enum(ResiliationKind, 16))
    reason: Mapped[str] = mapped_column(Text)
    requested_on: Mapped[dt.date] = mapped_column(Date)
    effective_on: Mapped[dt.date] = mapped_column(Date, index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: When the exchange actually ended (the end of delivery, R-TR-4).
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TermsVersion(Base):
    """A version of the terms of use of one environment (R-SQ-6, CGU §14)."""

    __tablename__ = "terms_versions"
    __table_args__ = (UniqueConstraint("environment", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[Environment] = mapped_column(string_enum(Environment, 16))
    version: Mapped[str] = mapped_column(String(32))
    #: The date from which the version applies.
    effective_on: Mapped[dt.date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    #: The versions shipped with the package (v2023-11): not notified, nobody reminded.
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TermsAcceptance(Base):
    """An organisation's acceptance of one version (R-SQ-6, R-HAB-1)."""

    __tablename__ = "terms_acceptances"
    __table_args__ = (UniqueConstraint("organisation_siret", "terms_version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    terms_version_id: Mapped[int] = mapped_column(Integer, index=True)
    version: Mapped[str] = mapped_column(String(32))
    accepted_by: Mapped[str] = mapped_column(String(200))
    accepted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ChangeAnnouncement(Base):
    """A production change announced ahead (R-SQ-4, CGU §9.3)."""

    __tablename__ = "change_announcements"
    __table_args__ = (
        CheckConstraint(
            "emergency_reason IS NULL OR length(emergency_reason) > 0", name="reason_given"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[Environment] = mapped_column(string_enum(Environment, 16))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    announced_on: Mapped[dt.date] = mapped_column(Date)
    effective_on: Mapped[dt.date] = mapped_column(Date, index=True)
    #: Set for an emergency change (7 working days instead of 14).
    emergency_reason: Mapped[str | None] = mapped_column(Text)
    announced_by: Mapped[str] = mapped_column(String(200))
    announced_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Notice(Base):
    """A written notice (R-OPS-4) to one recipient, kept whether or not the mail went out.

    ``key`` is unique: one notice per event (or job and slot) and recipient, so that a job
    run twice writes (and sends) nothing twice. The dispatcher claims pending notices one
    by one (``claimed_at``), so that two runners never send the same one.
    """

    __tablename__ = "compliance_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    organisation_siret: Mapped[str | None] = mapped_column(String(14), index=True)
    id_teleservice: Mapped[str | None] = mapped_column(String(64), index=True)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    #: ``pending``, ``sent``, ``failed`` (given up after its attempts) or
    #: ``undeliverable`` (no contact to write to: kept for the record).
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class JobRun(Base):
    """One run of one job for one slot (its Paris day): claimed once, journaled."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    slot: Mapped[str] = mapped_column(String(32))
    #: ``running``, ``ok`` or ``failed`` (a failed slot is run again).
    outcome: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
