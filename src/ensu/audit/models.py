"""The journal's tables (R-TR-1, R-TR-2, R-TR-4).

- ``audit_events``: the *outbox* of :func:`ensu.audit.service.record_event`. A feature
  records its event in its own transaction (so the event exists if and only if the change
  does); the relay then appends it to the Merkle log and notes its ``journal_index``.
- ``journal_leaves``: the Merkle log, one row per leaf. ``leaf_index`` is the position in
  the tree, contiguous from 0 and never reused (ids must stay monotonic, as warehouse's
  ``JournalEntry`` explains: a reader resumes from the last index it saw). ``record``
  holds the canonical bytes (``NULL`` once purged, R-TR-4); ``leaf_hash`` is
  ``SHA-256(0x00 || record)`` and stays forever. The other columns are copies of
  fields of the record for the export and the purge; verification checks them.
- ``journal_nodes``: the hashes of the perfect subtrees whose height is a multiple of 8
  ("tiles"): with them any root and any proof costs a few small reads.
- ``journal_checkpoints``: signed checkpoints (C2SP signed note over tlog-checkpoint).
- ``journal_alarms``: integrity breaches; an open alarm stops the service until an
  operator clears it (``ensu journal resume``).

On PostgreSQL the first three tables refuse UPDATE, DELETE and TRUNCATE (triggers of the
migration), except the purge-shaped UPDATE of :mod:`ensu.audit.retention`. On SQLite the
journal lives in its own file, ``var/journal.db`` (see :mod:`ensu.audit.store`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class Event(Base):
    """A tagged event (``source:subject:action``) with its structured details (outbox)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    tag: Mapped[str] = mapped_column(String(96), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, object]] = mapped_column(JSON)
    #: Where the relay appended it in the Merkle log; ``NULL`` until then.
    journal_index: Mapped[int | None] = mapped_column(BigInteger, index=True)


class JournalLeaf(Base):
    """One leaf of the Merkle log: a call record or an event (R-TR-1, R-TR-2)."""

    __tablename__ = "journal_leaves"
    __table_args__ = (
        Index("ix_journal_leaves_teleservice_at", "id_teleservice", "at"),
        Index("ix_journal_leaves_retention_at", "retention", "at"),
    )

    leaf_index: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    record: Mapped[bytes | None] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(8))
    retention: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    id_teleservice: Mapped[str | None] = mapped_column(String(64))
    tag: Mapped[str | None] = mapped_column(String(96))
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class JournalNode(Base):
    """A perfect subtree of height ``level`` (a multiple of 8): leaves
    ``[node_index << level, (node_index + 1) << level)``."""

    __tablename__ = "journal_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class JournalCheckpoint(Base):
    """A signed checkpoint: the tree of ``tree_size`` leaves has root ``root_hash``."""

    __tablename__ = "journal_checkpoints"

    tree_size: Mapped[int] = mapped_column(_BIGINT, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(8))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    #: The signed note itself: the checkpoint text, a blank line, the signature line.
    note: Mapped[str] = mapped_column(Text)


class JournalAlarm(Base):
    """An integrity breach (R-TR-2): open until an operator clears it after a verification."""

    __tablename__ = "journal_alarms"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    problem: Mapped[str] = mapped_column(Text)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str | None] = mapped_column(String(128))
    clear_reason: Mapped[str | None] = mapped_column(Text)


#: The tables of the Merkle log proper, which PostgreSQL triggers keep append-only.
APPEND_ONLY_TABLES = ("journal_leaves", "journal_nodes", "journal_checkpoints")
#: Every table that lives in the journal store (its own file on SQLite).
JOURNAL_TABLES: tuple[Table, ...] = tuple(
    Base.metadata.tables[name] for name in (*APPEND_ONLY_TABLES, "journal_alarms")
)
