"""The client's errors: one class per family of the contract's codes (CONTRACT.md, "Errors").

Every error the API answers in ``application/problem+json`` (RFC 9457) is raised as the
class of its family, carrying the contract's ``code``, the HTTP ``status``, the call's
``correlation_id`` and a ``hint`` that says what to do about it::

    EnsuClientError
    ├── ConfigurationError          settings missing, certificate files unreadable
    ├── TransportError              no answer: connection, TLS handshake, timeout
    ├── TokenError                  POST /token refused (RFC 6749 §5.2: error, description)
    ├── UnexpectedResponse          an answer the contract does not describe
    ├── DigestMismatch              the content is not what Repr-Digest says (RFC 9530)
    ├── ApiError                    a problem document with a contract code
    │   ├── RequestInvalid          400  910000 920400       (+ erreurs)
    │   │                           413 414 431  920413 920414 920431 (bounds)
    │   ├── AuthenticationFailed    401  910001 900901 900902
    │   ├── AccessDenied            403  910002 910003 910004 900910
    │   ├── DocumentNotFound        404  920404
    │   ├── QuotaExceeded           429  900804              (+ retry_after)
    │   ├── ServiceUnavailable      503  930001 930002 930003 930004 930005 (+ retry_after)
    │   └── ServerError             5xx  999999
    └── SiloError                   the secure silo (R-CON-2)
        ├── SiloKeyError            wrong passphrase or key file
        ├── SiloIntegrityError      a stored object or the trace was altered
        └── SiloDocumentNotFound    nothing stored under that identity
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class EnsuClientError(Exception):
    """Base of every error this package raises."""

    #: What the user can do about it, in plain words.
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class ConfigurationError(EnsuClientError):
    """The client cannot be set up: a setting is missing, a certificate file unreadable."""

    hint = (
        "Give the connection as options before the command (--url, --cert, --key, --cacert,"
        " --client-id, --teleservice), as ENSU_CLIENT_* variables, or in the config file."
    )


class TransportError(EnsuClientError):
    """The server could not be reached or the TLS handshake failed: no answer at all."""

    hint = (
        "Check --url, that the server is up, and the certificate files (--cert, --key,"
        " --cacert): a certificate the server does not trust fails the handshake."
    )


class TokenError(EnsuClientError):
    """``POST /token`` refused (RFC 6749 §5.2), or answered no usable token."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error: str,
        description: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=TOKEN_HINTS.get(error, TOKEN_HINTS["invalid_client"]))
        self.status = status
        self.error = error
        self.description = description
        self.retry_after = retry_after


TOKEN_HINTS: dict[str, str] = {
    "invalid_client": (
        "The server does not know this client with this certificate: check --client-id,"
        " that the certificate is the one registered for the téléservice, and the secret"
        " for a client_secret_basic client."
    ),
    "unauthorized_client": (
        "The téléservice may not get a token now (suspended, not yet valid, ended, or of"
        " the other environment): ask the API's operator."
    ),
    "invalid_request": "The token request was malformed: report it with the client's version.",
    "unsupported_grant_type": "Only client_credentials is supported.",
    "invalid_scope": "Ask for the 'documents' scope or none.",
    "slow_down": "Too many token requests: wait and retry.",
    "temporarily_unavailable": "The authorization server is unavailable: retry later.",
}


class UnexpectedResponse(EnsuClientError):
    """An answer outside the contract (no problem document, a body that does not parse)."""

    hint = "Check --url: it must be the API's root (https://host:port), not a page of it."

    def __init__(self, message: str, *, status: int, correlation_id: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.correlation_id = correlation_id


class DigestMismatch(EnsuClientError):
    """The content received does not hash to its ``Repr-Digest`` (RFC 9530) or to the
    metadata's ``empreinteSha256``: the file is not kept."""

    hint = "The document was altered in transit or at rest: retry, and report the correlation id."

    def __init__(
        self, message: str, *, correlation_id: str | None, expected: str, actual: str
    ) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id
        self.expected = expected
        self.actual = actual


class ApiError(EnsuClientError):
    """A refusal of the API, with the contract's code (CONTRACT.md, "Errors")."""

    #: The codes of this family, each with what to do about it.
    codes: ClassVar[Mapping[str, str]] = {}
    default_hint: ClassVar[str] = "Report the correlation id to the API's operator."

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        correlation_id: str | None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=self.codes.get(code, self.default_hint))
        self.code = code
        self.status = status
        self.correlation_id = correlation_id
        #: The problem document as received (RFC 9457).
        self.problem: Mapping[str, Any] = problem or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"


class RequestInvalid(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "910000": "The X-Correlation-ID header must be a UUID (the client sets one per call).",
        "920400": (
            "A parameter is invalid (see 'erreurs'): a SIREN is 9 digits with a valid check"
            " digit, give siren or idsp (not both), dates as YYYY-MM-DD, taille 1-100."
        ),
        "920413": "The request carried a body: the API's calls take none.",
        "920414": "The path and query are too long: fewer codeDocument values per call.",
        "920431": "Too many or too large request headers: send only the contract's headers.",
    }

    @property
    def erreurs(self) -> list[dict[str, str]]:
        """The parameters at fault: ``[{"parametre": ..., "message": ...}]``."""
        found = self.problem.get("erreurs") or []
        return [dict(item) for item in found if isinstance(item, Mapping)]


class AuthenticationFailed(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "910001": (
            "The client certificate is missing, expired, revoked or not registered: check"
            " --cert and --key, and that the certificate is registered for the téléservice."
        ),
        "900901": (
            "The access token was refused (expired, revoked, or bound to another"
            " certificate): the next call fetches a new one; retry once."
        ),
        "900902": "No access token was sent: check --client-id.",
    }


class AccessDenied(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "910002": "This machine's IP address is not in the téléservice's allowlist.",
        "910003": (
            "ID_Teleservice is missing, unknown or not the one of these credentials: check"
            " --teleservice."
        ),
        "910004": (
            "The habilitation is suspended, revoked, ended or of the other environment: ask"
            " the API's operator."
        ),
        "900910": (
            "The document code or the period is outside the habilitation's perimeter:"
            " narrow --code or the dates."
        ),
    }


class DocumentNotFound(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "920404": (
            "No such document in your perimeter: check the identifier and its type"
            " (IDENSUA, DOCDISTRIB or DOCCFS)."
        ),
    }


class QuotaExceeded(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "900804": "The calls-per-minute quota is used up: wait Retry-After seconds.",
    }


class ServiceUnavailable(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "930001": "Scheduled maintenance: retry after the announced delay.",
        "930002": "The exchange journal is unavailable, so no data is served: retry later.",
        "930003": "The quota counters are unreachable (the quota fails closed): retry later.",
        "930004": "The server's database did not answer in time: retry shortly.",
        "930005": "The server is overloaded: retry in a moment.",
    }


class ServerError(ApiError):
    codes: ClassVar[Mapping[str, str]] = {
        "999999": "An internal error on the server: report the correlation id.",
    }


class SiloError(EnsuClientError):
    """The secure silo (R-CON-2) refused an operation."""


class SiloKeyError(SiloError):
    hint = (
        "Wrong passphrase or key file for this silo: the silo was created with another"
        " key; nothing was read."
    )


class SiloIntegrityError(SiloError):
    hint = (
        "The silo's files were altered (or mixed up): the object is not returned. Restore"
        " it from a backup, or fetch the document again."
    )


class SiloDocumentNotFound(SiloError):
    hint = "Nothing is stored in the silo under this identity (or it was purged)."


#: Every family, by the HTTP status its codes come with.
FAMILIES: tuple[type[ApiError], ...] = (
    RequestInvalid,
    AuthenticationFailed,
    AccessDenied,
    DocumentNotFound,
    QuotaExceeded,
    ServiceUnavailable,
    ServerError,
)
_BY_CODE = {code: family for family in FAMILIES for code in family.codes}
_BY_STATUS = {400: RequestInvalid, 401: AuthenticationFailed, 403: AccessDenied}
_BY_STATUS |= {404: DocumentNotFound, 429: QuotaExceeded, 503: ServiceUnavailable}


def family_of(*, code: str, status: int) -> type[ApiError]:
    """The class for ``code``; for a code this client does not know yet, its status's."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    return _BY_STATUS.get(status, ServerError)
