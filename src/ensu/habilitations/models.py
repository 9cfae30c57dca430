"""Tables of the habilitations feature (R-HAB-1 to R-HAB-4).

- ``habilitation_requests``: one request of one stage; its blocks as JSON (validated per
  block by :mod:`ensu.habilitations.schemas`), its state (:mod:`.workflow`), and for a
  production request the sandbox request it started from (R-HAB-3).
- ``habilitation_request_events``: every transition, with actor, time, reason and the
  legal analysis of a decision (R-HAB-2); the timeline. Append-only.
- ``habilitation_request_messages``: the exchange between applicant and instructor.
- ``habilitation_attachments``: the PDFs of a request, by SHA-256 (the bytes are in
  :mod:`.storage`).
- ``habilitations``: the immutable snapshot a validation yields: the data as validated,
  the téléservice it provisioned, and its status (active, obsolete, revoked).

Téléservices are the consumers feature's: this feature writes them through
``consumers.service`` and keeps only their ``ID_Teleservice``.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ensu.config import Environment
from ensu.db import Base, string_enum
from ensu.habilitations.workflow import Action, State


class HabilitationStatus(enum.StrEnum):
    """A snapshot's life: active until a newer validation (obsolete) or a revocation."""

    ACTIVE = "active"
    OBSOLETE = "obsolete"
    REVOKED = "revoked"


class HabilitationRequest(Base):
    __tablename__ = "habilitation_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    organisation_name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[Environment] = mapped_column(string_enum(Environment, 16))
    state: Mapped[State] = mapped_column(string_enum(State, 32), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The validated sandbox request a production request started from (R-HAB-3).
    previous_stage_id: Mapped[int | None] = mapped_column(
        ForeignKey("habilitation_requests.id"), unique=True
    )
    #: The stage's téléservice once provisioned (R-HAB-4).
    id_teleservice: Mapped[str | None] = mapped_column(String(64))
    applicant_label: Mapped[str] = mapped_column(String(200))
    applicant_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RequestEvent(Base):
    __tablename__ = "habilitation_request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("habilitation_requests.id", ondelete="CASCADE"), index=True
    )
    #: A transition of the table, or ``create`` / ``update`` / ``attach`` / ``message``.
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[State | None] = mapped_column(string_enum(State, 32))
    to_state: Mapped[State] = mapped_column(string_enum(State, 32))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_label: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)
    legal_analysis: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RequestMessage(Base):
    __tablename__ = "habilitation_request_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("habilitation_requests.id", ondelete="CASCADE"), index=True
    )
    author_kind: Mapped[str] = mapped_column(String(16))
    author_label: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Attachment(Base):
    __tablename__ = "habilitation_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("habilitation_requests.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Habilitation(Base):
    """What a validation granted, frozen (R-HAB-2): never updated but for its status."""

    __tablename__ = "habilitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("habilitation_requests.id"), index=True)
    organisation_siret: Mapped[str] = mapped_column(String(14), index=True)
    stage: Mapped[Environment] = mapped_column(string_enum(Environment, 16))
    status: Mapped[HabilitationStatus] = mapped_column(string_enum(HabilitationStatus, 16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    id_teleservice: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    validated_by: Mapped[str] = mapped_column(String(200))
    legal_analysis: Mapped[str] = mapped_column(Text)
    validated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: A client secret awaiting its one reading (AES-GCM sealed with the app's secret
    #: key); emptied when read (R-HAB-4: shown once).
    sealed_secret: Mapped[str | None] = mapped_column(Text)


__all__ = [
    "Action",
    "Attachment",
    "Habilitation",
    "HabilitationRequest",
    "HabilitationStatus",
    "RequestEvent",
    "RequestMessage",
]
