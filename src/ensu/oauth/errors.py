"""Errors of the authorization server, in RFC 6749 §5.2 form (not problem+json)::

    OAuthError
    ├── InvalidRequest        400 invalid_request
    │   └── RequestTooLarge   413 invalid_request      (a body beyond MAX_FORM_BYTES)
    ├── InvalidClient         401 invalid_client        (+ WWW-Authenticate)
    ├── UnauthorizedClient    400 unauthorized_client
    ├── UnsupportedGrantType  400 unsupported_grant_type
    ├── InvalidScope          400 invalid_scope
    ├── SlowDown              429 slow_down             (+ Retry-After)
    └── TemporarilyUnavailable 503 temporarily_unavailable (+ Retry-After)

``slow_down`` is the token endpoint error of RFC 8628 §3.5, registered in IANA's "OAuth
Extensions Error Registry" for token endpoint responses: the closest standard word for
"too many requests" there. ``temporarily_unavailable`` is RFC 6749 §4.1.2.1's word for
a server that cannot handle the request now (there, of the authorization endpoint): the
token endpoint answers it when its database is down or too slow, rather than a 500.
``reason`` is for the journal only and never sent.
"""

from __future__ import annotations

from typing import ClassVar

import orjson


class OAuthError(Exception):
    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, description: str, *, reason: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason or self.error

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> bytes:
        return orjson.dumps({"error": self.error, "error_description": self.description})


class InvalidRequest(OAuthError):
    error, status = "invalid_request", 400


class RequestTooLarge(InvalidRequest):
    """A form body beyond the bound (RFC 9110 §15.5.14: 413), in RFC 6749 §5.2 form like
    every answer of these endpoints; refused from its declared length before it is read."""

    status = 413


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2): 401 with a challenge (RFC 9110 §11.6.1)."""

    error, status = "invalid_client", 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="ensu"'}


class UnauthorizedClient(OAuthError):
    error, status = "unauthorized_client", 400


class UnsupportedGrantType(OAuthError):
    error, status = "unsupported_grant_type", 400


class InvalidScope(OAuthError):
    error, status = "invalid_scope", 400


class SlowDown(OAuthError):
    error, status = "slow_down", 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("Trop de requêtes : réessayez plus tard.", reason="throttled")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TemporarilyUnavailable(OAuthError):
    """The database is down or slower than ``ENSU_STORE_TIMEOUT_SECONDS``, or a planned
    maintenance window is on (R-SQ-1, ``Retry-After``: the seconds to its end): retry later."""

    error, status = "temporarily_unavailable", 503

    def __init__(self, *, reason: str = "store_unavailable", retry_after: int = 5) -> None:
        super().__init__("Service momentanément indisponible : réessayez plus tard.", reason=reason)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
