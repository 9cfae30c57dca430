"""Shapes of the document routes' answers, for the OpenAPI document (CONTRACT.md).

The routes render JSON with orjson directly (the hot path); these models describe it.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Identifiants(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    IDENSUA: str = Field(min_length=64, max_length=128)
    DOCDISTRIB: str | None
    DOCCFS: str | None


class DocumentOut(BaseModel):
    """A document's metadata (R-DATA-3, R-DATA-4)."""

    identifiants: Identifiants
    codeDocument: str
    libelle: str
    famille: str
    siren: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    idsp: str | None = None
    periodeDebut: dt.date
    periodeFin: dt.date
    dateEmission: dt.date
    empreinteSha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    taille: int = Field(ge=0)
    contenu: str


class DocumentsPage(BaseModel):
    documents: list[DocumentOut]
    page: int = Field(ge=1)
    taille: int = Field(ge=1, le=100)
    total: int = Field(ge=0)


class CodeDocumentOut(BaseModel):
    code: str
    libelle: str
    famille: str
    periodicite: str


class CodesDocuments(BaseModel):
    codesDocuments: list[CodeDocumentOut]


class MentionInformation(BaseModel):
    """The plain-words text shown to the consumer's users (R-CON-1)."""

    idTeleservice: str
    mentionInformation: str


class ErreurParametre(BaseModel):
    parametre: str
    message: str


class Problem(BaseModel):
    """``application/problem+json`` (RFC 9457) with the contract's members.

    As strict as :meth:`ensu.errors.EnsuError.body` writes it, so that the contract tests
    hold every error answered to it (code and type are the contract's six digits).
    """

    type: str = Field(pattern=r"^urn:ensu:erreur:[0-9]{6}$")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(pattern=r"^[0-9]{6}$")
    correlationId: str | None
    horodatage: dt.datetime
    erreurs: list[ErreurParametre] | None = None
