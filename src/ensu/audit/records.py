"""What the journal holds: one record per API call, and the events of every feature.

A record is a closed schema, never a bag of headers (R-TR-1): the fields are listed here,
each one validated, and nothing that looks like a token or a secret gets in. Its bytes are
canonical — JSON with sorted keys, no spaces, UTF-8, times in UTC to the millisecond —
and those bytes are the Merkle leaf (RFC 9162 §2.1.1, :mod:`ensu.audit.merkle`).

- :class:`CallRecord`: one API call, allowed or refused (R-TR-1).
- :class:`EventRecord`: an event of a feature, tagged ``source:subject:action``
  (:mod:`ensu.audit.tags`), with its actor and structured details.

Each record also has a *retention class* (R-TR-4): exchange data (calls, token issuance
and refusals) is kept ``journal_retention_days``; the other events (DataPass,
habilitations, consumers, keys) six years.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from ensu.audit.note import format_time, parse_time

VERSION = 1
#: A JWS/JWT in compact form: three base64url parts, the first a JSON header.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TAG = re.compile(r"[a-z0-9_]+:[a-z0-9_]+:[a-z0-9_]+")
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_SIREN = re.compile(r"[0-9]{9}")
_SIRET = re.compile(r"[0-9]{14}")
#: ``referenceDemande``: the consumer's case reference (CONTRACT.md), as the route takes it.
_REFERENCE = re.compile(r"[\w .:/-]{1,64}")
#: Keys never allowed in event details, at any depth: secrets have no place in the journal.
FORBIDDEN_KEYS = frozenset(
    {
        "access_token",
        "assertion",
        "authorization",
        "client_assertion",
        "client_secret",
        "password",
        "private_key",
        "refresh_token",
        "secret",
        "token",
    }
)
_FORBIDDEN_SUFFIXES = ("_secret", "_password", "_token")
#: Event tag sources whose events are exchange data (R-TR-4), not DataPass data.
EXCHANGE_TAG_PREFIXES = ("oauth:token:", "oauth:client:")


#: Fields taken from what the caller sent: emptied rather than refused by ``from_request``.
_DROPPABLE = (
    "consumer",
    "id_teleservice",
    "client_id",
    "thumbprint",
    "jti",
    "ip",
    "correlation_id",
    "siren",
    "idsp",
    "document_codes",
    "document_ids",
    "reference_demande",
)


class RecordError(ValueError):
    """A record that the journal refuses (unknown field, bad value, a secret)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Decision(enum.StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"


class Kind(enum.StrEnum):
    CALL = "call"
    EVENT = "event"


class Retention(enum.StrEnum):
    """R-TR-4: how long a record's bytes are kept (its leaf hash is kept forever)."""

    EXCHANGE = "exchange"
    DATAPASS = "datapass"


def _text(name: str, value: object, *, limit: int, pattern: re.Pattern[str] | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise RecordError(f"{name}: a string of 1 to {limit} characters", field=name)
    if _JWT.search(value):
        raise RecordError(f"{name}: looks like a token; the journal never holds one", field=name)
    if pattern is not None and not pattern.fullmatch(value):
        raise RecordError(f"{name}: {value[:80]!r} is not well formed", field=name)


def _utc_ms(name: str, value: dt.datetime) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise RecordError(f"{name}: an aware datetime")
    utc = value.astimezone(dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


_METHOD = re.compile(r"[A-Z]+")
_ROUTE = re.compile(r"/[!-~]*")
_ERROR_CODE = re.compile(r"[0-9]{6}")


@lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    """Whether ``text`` is an IP address (cached: the same callers come back)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One API call, allowed or refused (R-TR-1). Never a token, never a secret."""

    kind: ClassVar[Kind] = Kind.CALL

    at: dt.datetime
    #: The consumer: the organisation's SIRET (unknown when refused before identification).
    consumer: str | None = None
    id_teleservice: str | None = None
    client_id: str | None = None
    #: ``x5t#S256`` of the client certificate (RFC 8705 §3.1).
    thumbprint: str | None = None
    #: The access token's ``jti`` (RFC 9068 §2.2), never the token itself.
    jti: str | None = None
    ip: str | None = None
    correlation_id: str | None = None
    siren: str | None = None
    idsp: str | None = None
    document_codes: tuple[str, ...] = ()
    document_ids: tuple[str, ...] = ()
    #: ``referenceDemande``, the consumer's case reference (CONTRACT.md): the journal of
    #: a case is found by it (``ensu journal export --reference``). In the canonical
    #: bytes only when set, so that the records written before it keep their bytes.
    reference_demande: str | None = None
    method: str = "GET"
    route: str
    decision: Decision
    #: A stable short code: ``ok``, or why the call was refused.
    reason: str
    status: int
    #: The contract's error code (``910001`` ...) when the call was refused.
    error_code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc_ms("at", self.at))
        object.__setattr__(self, "decision", Decision(self.decision))
        object.__setattr__(self, "document_codes", tuple(self.document_codes))
        object.__setattr__(self, "document_ids", tuple(self.document_ids))
        self._check_identity()
        self._check_request()

    def _check_identity(self) -> None:
        _text("consumer", self.consumer, limit=14, pattern=_SIRET)
        _text("id_teleservice", self.id_teleservice, limit=64, pattern=_CODE)
        _text("client_id", self.client_id, limit=64, pattern=_CODE)
        _text("thumbprint", self.thumbprint, limit=43, pattern=_THUMBPRINT)
        _text("jti", self.jti, limit=64, pattern=_CODE)
        _text("correlation_id", self.correlation_id, limit=64, pattern=_CODE)
        if self.ip is not None and not _is_ip(self.ip):
            raise RecordError(f"ip: {self.ip[:80]!r} is not an IP address", field="ip")

    def _check_request(self) -> None:
        _text("siren", self.siren, limit=9, pattern=_SIREN)
        _text("idsp", self.idsp, limit=32, pattern=_CODE)
        for code in self.document_codes:
            _text("document_codes", code, limit=16, pattern=_CODE)
        for identifier in self.document_ids:
            _text("document_ids", identifier, limit=128, pattern=_CODE)
        _text("reference_demande", self.reference_demande, limit=64, pattern=_REFERENCE)
        _text("method", self.method, limit=8, pattern=_METHOD)
        _text("route", self.route, limit=200, pattern=_ROUTE)
        _text("reason", self.reason, limit=64, pattern=_CODE)
        _text("error_code", self.error_code, limit=6, pattern=_ERROR_CODE)
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise RecordError("status: an HTTP status")
        if (self.decision is Decision.ALLOWED) != (self.status < 400):
            raise RecordError("decision and status disagree")

    @classmethod
    def from_request(cls, **values: Any) -> CallRecord:
        """The record of a call whatever the caller sent (R-TR-1): an identifying field
        the schema refuses (a malformed ``ID_Teleservice``, SIREN, correlation id...) is
        left empty rather than losing the record. Route, decision, reason and status are
        the gateway's own and must be valid."""
        for _ in _DROPPABLE:
            try:
                return cls(**values)
            except RecordError as exc:
                if exc.field not in _DROPPABLE or values.get(exc.field) in (None, ()):
                    raise
                values[exc.field] = () if exc.field.startswith("document_") else None
        return cls(**values)

    @property
    def retention(self) -> Retention:
        return Retention.EXCHANGE

    def fields(self) -> dict[str, Any]:
        fields = {
            "at": format_time(self.at),
            "client_id": self.client_id,
            "consumer": self.consumer,
            "correlation_id": self.correlation_id,
            "decision": str(self.decision),
            "document_codes": list(self.document_codes),
            "document_ids": list(self.document_ids),
            "error_code": self.error_code,
            "id_teleservice": self.id_teleservice,
            "idsp": self.idsp,
            "ip": self.ip,
            "jti": self.jti,
            "method": self.method,
            "reason": self.reason,
            "route": self.route,
            "siren": self.siren,
            "status": self.status,
            "thumbprint": self.thumbprint,
        }
        if self.reference_demande is not None:
            fields["reference_demande"] = self.reference_demande
        return fields


def check_details(details: Mapping[str, object], path: str = "details") -> None:
    """Refuse secret-named keys and token-looking strings anywhere in ``details``."""
    for key, value in details.items():
        if not isinstance(key, str):
            raise RecordError(f"{path}: keys are strings")
        lowered = key.lower()
        if lowered in FORBIDDEN_KEYS or lowered.endswith(_FORBIDDEN_SUFFIXES):
            raise RecordError(f"{path}.{key}: secrets never go to the journal")
        _check_value(value, f"{path}.{key}")


def _check_value(value: object, path: str) -> None:
    if isinstance(value, Mapping):
        check_details(value, path)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_value(item, path)
    elif isinstance(value, str) and _JWT.search(value):
        raise RecordError(f"{path}: looks like a token; the journal never holds one")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """An event of a feature, as :func:`ensu.audit.service.record_event` wrote it."""

    kind: ClassVar[Kind] = Kind.EVENT

    at: dt.datetime
    tag: str
    actor: str
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The row of ``audit_events`` it comes from (at-least-once relay: duplicates show).
    event_id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc_ms("at", self.at))
        _text("tag", self.tag, limit=96, pattern=_TAG)
        _text("actor", self.actor, limit=128)
        if not isinstance(self.details, Mapping):
            raise RecordError("details: a mapping")
        check_details(self.details)
        try:
            orjson.dumps(self.details)
        except TypeError as exc:
            raise RecordError(f"details: not JSON: {exc}") from None

    @property
    def retention(self) -> Retention:
        if self.tag.startswith(EXCHANGE_TAG_PREFIXES):
            return Retention.EXCHANGE
        return Retention.DATAPASS

    @property
    def id_teleservice(self) -> str | None:
        """The téléservice an event concerns, for the investigation export (R-TR-3)."""
        value = self.details.get("id_teleservice")
        return value if isinstance(value, str) and _CODE.fullmatch(value) else None

    def fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "at": format_time(self.at),
            "details": self.details,
            "event_id": self.event_id,
            "tag": self.tag,
        }


Record = CallRecord | EventRecord


def encode(record: Record) -> bytes:
    """The canonical bytes of ``record``: the Merkle leaf data."""
    document = {"kind": str(record.kind), "v": VERSION, **record.fields()}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def decode(data: bytes) -> Record:
    """The record in canonical ``data``; :class:`RecordError` if it is not one."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise RecordError("not JSON") from None
    if not isinstance(document, dict) or document.pop("v", None) != VERSION:
        raise RecordError("not a journal record of this version")
    kind = document.pop("kind", None)
    try:
        document["at"] = parse_time(document["at"])
        record: Record
        if kind == Kind.CALL:
            document["document_codes"] = tuple(document["document_codes"])
            document["document_ids"] = tuple(document["document_ids"])
            record = CallRecord(**document)
        elif kind == Kind.EVENT:
            record = EventRecord(**document)
        else:
            raise RecordError(f"unknown record kind {kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"malformed record: {exc}") from None
    if encode(record) != data:
        raise RecordError("the record is not in canonical form")
    return record
