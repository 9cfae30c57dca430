"""The journal's tables.

For now one append-only table of events; the Merkle log with signed checkpoints (R-TR-2)
and the per-call records (R-TR-1) arrive with the journal issue and extend it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base


class Event(Base):
    """A tagged event (``source:subject:action``) with its structured details."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    tag: Mapped[str] = mapped_column(String(96), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, object]] = mapped_column(JSON)
