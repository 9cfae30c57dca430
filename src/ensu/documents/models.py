"""Tables of the documents feature: catalogue, subjects, documents, database blobs.

R-DATA-1 (catalogue and families), R-DATA-2 (SIREN or IDSP), R-DATA-3 (three kinds of
identifiers), R-DATA-4 (period, issue date, SHA-256 and size of the PDF).

Sizes matter here (target: at most 400 bytes of database per document at 10 million
documents): the SHA-256 is stored as 32 raw bytes, dates as dates, and one composite
unique index serves both the listing by subject and the idempotence of imports.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base, string_enum


class Family(enum.StrEnum):
    """The seven families of documents of R-DATA-1 (CGU §2.1)."""

    DECLARATIVES = "declaratives"
    BANCAIRES = "bancaires"
    CREANCES = "creances"
    PAIEMENTS = "paiements"
    REMBOURSEMENTS = "remboursements"
    OBLIGATIONS_FISCALES = "obligations_fiscales"
    HABILITATIONS = "habilitations"


class Periodicity(enum.StrEnum):
    MENSUELLE = "mensuelle"
    TRIMESTRIELLE = "trimestrielle"
    ANNUELLE = "annuelle"
    PONCTUELLE = "ponctuelle"


class DocumentCode(Base):
    """One entry of the published catalogue (R-DATA-1)."""

    __tablename__ = "document_codes"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    famille: Mapped[Family] = mapped_column(string_enum(Family, 24))
    libelle: Mapped[str] = mapped_column(String(200))
    periodicite: Mapped[Periodicity] = mapped_column(string_enum(Periodicity, 16))


class Subject(Base):
    """A professional user: a SIREN, or an IDSP when it has none (R-DATA-2)."""

    __tablename__ = "subjects"
    __table_args__ = (
        CheckConstraint("(siren IS NULL) <> (idsp IS NULL)", name="exactly_one_identifier"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    siren: Mapped[str | None] = mapped_column(String(9), unique=True)
    idsp: Mapped[str | None] = mapped_column(String(16), unique=True)
    denomination: Mapped[str] = mapped_column(String(200))


class Document(Base):
    """A document's metadata; its PDF lives in the blob store under its SHA-256."""

    __tablename__ = "documents"
    __table_args__ = (
        # Listing by subject (and code, period) and import idempotence share one index.
        Index(
            "uq_documents_natural_key",
            "subject_id",
            "code",
            "periode_debut",
            "periode_fin",
            "sha256",
            unique=True,
        ),
        CheckConstraint("periode_debut <= periode_fin", name="period_ordered"),
        CheckConstraint("taille >= 0", name="size_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idensua: Mapped[str] = mapped_column(String(128), unique=True)
    docdistrib: Mapped[str | None] = mapped_column(String(64), unique=True)
    doccfs: Mapped[str | None] = mapped_column(String(64), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(ForeignKey("document_codes.code", ondelete="RESTRICT"))
    periode_debut: Mapped[dt.date] = mapped_column(Date)
    periode_fin: Mapped[dt.date] = mapped_column(Date)
    date_emission: Mapped[dt.date] = mapped_column(Date)
    taille: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))


class Blob(Base):
    """Content-addressed blobs when the blob store is the database (PostgreSQL mode)."""

    __tablename__ = "blobs"

    sha256: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
