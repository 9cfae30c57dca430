"""The operations feature's tables: maintenance windows (R-SQ-1) and the availability
minutes (R-SQ-2).

Backups, security events, incidents and breaches keep tables of their own here too; no
other feature reads these but through :mod:`ensu.operations.service`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base


class MaintenanceWindow(Base):
    """A planned maintenance window (R-SQ-1): at most 2 hours of real time inside one
    night's 23:00-06:00 Europe/Paris. A cancelled window stays, with its cancellation."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (CheckConstraint("end_at > start_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    end_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: The night the window belongs to: the Paris date on which its 23:00 falls.
    night: Mapped[str] = mapped_column(String(10), index=True)
    reason: Mapped[str] = mapped_column(Text)
    planned_by: Mapped[str] = mapped_column(String(200))
    planned_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AvailabilityMinute(Base):
    """What was observed in one minute (R-SQ-2), summed over every instance.

    ``minute`` is the Unix minute (seconds // 60). ``answered``: calls answered below 500,
    or 503 930001 (the planned window); ``failed``: calls answered 5xx otherwise;
    ``probe_ok`` / ``probe_failed``: the internal probe's calls.
    """

    __tablename__ = "availability_minutes"

    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    probe_ok: Mapped[int] = mapped_column(Integer, default=0)
    probe_failed: Mapped[int] = mapped_column(Integer, default=0)


class SecurityEvent(Base):
    """A security event raised by a detection rule over the journal (R-OPS-1), with its
    evidence; correlated per téléservice (or per address when none was identified)."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(32), index=True)
    #: ``TS-…`` or ``ip:198.51.100.7``: what the rule correlated on.
    subject: Mapped[str] = mapped_column(String(100), index=True)
    id_teleservice: Mapped[str | None] = mapped_column(String(64), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, object]] = mapped_column(JSON)
    detected_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: What the alert circuit did: ``{"mail": "sent" | "…error…", "webhooks": n}``.
    alerts: Mapped[dict[str, object]] = mapped_column(JSON)
    #: The incident this event was attached to (R-OPS-2), if any.
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)


class DetectionCursor(Base):
    """How far in the journal the detection has read (one row). Advanced by compare and
    set, in the transaction that stores the events found: two instances never raise
    the same event twice."""

    __tablename__ = "detection_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class ServiceCutRecord(Base):
    """The whole service cut (R-OPS-2): every call 503 930006 while ``ended_at`` is
    NULL; each instance follows it within a second (:mod:`ensu.operations.isolation`)."""

    __tablename__ = "service_cuts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str] = mapped_column(String(200))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    ended_by: Mapped[str | None] = mapped_column(String(200))


class Incident(Base):
    """A security incident through the phases of CGU §8 (R-OPS-2): isolation,
    investigation, treatment, closure; its actions are :class:`IncidentAction` rows."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    #: The type the periodic review counts by (``ensu.operations.incidents.KINDS``).
    kind: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    #: ``open`` → ``isolated`` → ``investigating`` → ``treating`` → ``closed``.
    phase: Mapped[str] = mapped_column(String(16), index=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    opened_by: Mapped[str] = mapped_column(String(200))
    isolated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    qualification: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(Text)
    #: The closure checklist: item → {"by", "at", "note"} once verified.
    checklist: Mapped[dict[str, object]] = mapped_column(JSON)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(200))


class IncidentAction(Base):
    """One thing done for an incident: an isolation, an export, a restriction … with
    what undoes it at closure (``undo``), and when it was undone."""

    __tablename__ = "incident_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, object]] = mapped_column(JSON)
    undone_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Breach(Base):
    """A personal-data breach in the register (R-OPS-3, CGU §6.6; RGPD art. 33.5: the
    facts, the effects, the measures), with its 72-hour deadline to the CNIL counted
    from ``discovered_at`` and the notices sent to the other controllers."""

    __tablename__ = "breaches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    #: When the producer became aware of it: the 72 hours run from here.
    discovered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(200))
    #: ``confidentiality``, ``integrity``, ``availability`` (one or more, comma-separated).
    nature: Mapped[str] = mapped_column(String(64))
    #: ``unlikely`` (documented, not notified), ``risk`` (CNIL), ``high`` (CNIL and persons).
    risk: Mapped[str] = mapped_column(String(16))
    teleservices: Mapped[list[str]] = mapped_column(JSON)
    measures: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    cnil_notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cnil_reference: Mapped[str | None] = mapped_column(String(100))
    #: The deadline alerts already sent (``24h``, ``6h``, ``overdue``).
    alerts: Mapped[list[str]] = mapped_column(JSON)
    #: The other controllers told: [{"id_teleservice", "role", "email", "at", "outcome"}].
    notices: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
