"""Typed results: what the API answers, as frozen dataclasses (CONTRACT.md, "Documents").

Attribute names are the contract's French field names in snake case; ``raw`` keeps each
object exactly as the API gave it (``--json`` prints that). Every call's answer comes in a
:class:`Result` with the correlation id sent and echoed, and the quota state read from
``RateLimit-*``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from ensu_client._exceptions import UnexpectedResponse

T = TypeVar("T")


class IdentifierType(StrEnum):
    """The three ways to name one document (``typeIdentifiant``)."""

    IDENSUA = "IDENSUA"
    DOCDISTRIB = "DOCDISTRIB"
    DOCCFS = "DOCCFS"


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """``IDENSUA:…`` (or ``DOCDISTRIB:…``, ``DOCCFS:…``): one document's identity."""

    type: IdentifierType
    value: str

    @classmethod
    def parse(cls, text: str) -> DocumentRef:
        """``TYPE:VALUE``; :class:`ValueError` with the accepted forms otherwise."""
        kind, colon, value = text.partition(":")
        accepted = ", ".join(f"{member.value}:…" for member in IdentifierType)
        if not colon or not value or kind.upper() not in IdentifierType.__members__:
            raise ValueError(f"{text!r} is not a document reference ({accepted})")
        return cls(IdentifierType(kind.upper()), value)

    def __str__(self) -> str:
        return f"{self.type.value}:{self.value}"


@dataclass(frozen=True, slots=True)
class Quota:
    """The quota state of the last answer (``RateLimit-Limit``, ``-Remaining``, ``-Reset``)."""

    limit: int
    remaining: int
    #: Seconds until the window resets.
    reset: int

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Quota | None:
        try:
            return cls(
                limit=int(headers["ratelimit-limit"]),
                remaining=int(headers["ratelimit-remaining"]),
                reset=int(headers["ratelimit-reset"]),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """One call's answer: its value, the correlation id, the quota after it."""

    value: T
    correlation_id: str
    quota: Quota | None
    status: int = 200


@dataclass(frozen=True, slots=True)
class Identifiants:
    idensua: str
    docdistrib: str | None
    doccfs: str | None


@dataclass(frozen=True, slots=True)
class Document:
    """One document's metadata."""

    identifiants: Identifiants
    code_document: str
    libelle: str
    famille: str
    siren: str | None
    idsp: str | None
    periode_debut: dt.date
    periode_fin: dt.date
    date_emission: dt.date
    empreinte_sha256: str
    taille: int
    #: The relative link to the content.
    contenu: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def ref(self) -> DocumentRef:
        return DocumentRef(IdentifierType.IDENSUA, self.identifiants.idensua)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Document:
        ids = data["identifiants"]
        return cls(
            identifiants=Identifiants(ids["IDENSUA"], ids.get("DOCDISTRIB"), ids.get("DOCCFS")),
            code_document=data["codeDocument"],
            libelle=data["libelle"],
            famille=data["famille"],
            siren=data.get("siren"),
            idsp=data.get("idsp"),
            periode_debut=dt.date.fromisoformat(data["periodeDebut"]),
            periode_fin=dt.date.fromisoformat(data["periodeFin"]),
            date_emission=dt.date.fromisoformat(data["dateEmission"]),
            empreinte_sha256=data["empreinteSha256"],
            taille=int(data["taille"]),
            contenu=data["contenu"],
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class DocumentsPage:
    """One page of ``GET /documents``."""

    documents: tuple[Document, ...]
    page: int
    taille: int
    total: int
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def last(self) -> bool:
        return self.page * self.taille >= self.total or not self.documents

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentsPage:
        return cls(
            documents=tuple(Document.from_json(item) for item in data["documents"]),
            page=int(data["page"]),
            taille=int(data["taille"]),
            total=int(data["total"]),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class CodeDocument:
    """A catalogue entry inside the caller's perimeter."""

    code: str
    libelle: str
    famille: str
    periodicite: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CodeDocument:
        return cls(data["code"], data["libelle"], data["famille"], data["periodicite"])


@dataclass(frozen=True, slots=True)
class MentionInformation:
    """The text the consumer shows its users before the exchange (R-CON-1)."""

    id_teleservice: str
    texte: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MentionInformation:
        return cls(data["idTeleservice"], data["mentionInformation"])


@dataclass(frozen=True, slots=True)
class Health:
    """``etatSante``: ``ok``, ``maintenance`` or ``degrade``."""

    statut: str
    descriptif: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Health:
        return cls(data["statut"], data["descriptif"])


@dataclass(frozen=True, slots=True)
class Download:
    """A document's content written to ``path``, its SHA-256 checked (RFC 9530)."""

    path: Path
    size: int
    sha256: str


def parsed(
    parse: Callable[[Any], T], data: Any, *, status: int, correlation_id: str | None, what: str
) -> T:
    """``parse(data)``, or :class:`UnexpectedResponse` naming ``what`` did not parse."""
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise UnexpectedResponse(
            f"the answer of {what} does not have the contract's shape ({error!r})",
            status=status,
            correlation_id=correlation_id,
        ) from None
