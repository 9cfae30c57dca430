"""The headers that every answer under the API prefix carries (CONTRACT.md, R-GW-6,
R-Q-1): ``X-Correlation-ID``, ``Date`` and ``RateLimit-Limit``, ``-Remaining``,
``-Reset``, refusals included, whichever check refused.

- ``X-Correlation-ID``: the request's own when it is a UUID, else a fresh UUID (v4), so
  that even a call refused for its correlation id (400 910000) can be quoted to support;
  the journal records the one the answer carried.
- ``Date`` (RFC 9110 §6.6.1): the app's clock (:mod:`ensu.clock`), on every answer of
  the app (``ensu serve`` turns uvicorn's own off, so that there is one).
- ``RateLimit-*``: the call's own quota decision when it reached the quota check; when
  the chain refused it earlier but had identified the téléservice, that téléservice's
  counter *peeked* (read, not counted); when the téléservice is not known (refused at the
  certificate, the IP or ``ID_Teleservice``, during an integrity stop, under overload,
  ``etatSante``) or its counter cannot be read in time, the fields of an empty window:
  ``RateLimit-Limit`` the quota that applies (the téléservice's if known, else the
  environment's default, 500 a minute in production, 50 in the sandbox),
  ``RateLimit-Remaining`` that same number (nothing is counted for such a caller),
  ``RateLimit-Reset`` the seconds to the end of the current one-minute window.

Security headers, pre-encoded here (no middleware, nothing computed per call):

- every answer of the app, under the prefix or not: ``Strict-Transport-Security``
  (RFC 6797: the API is only ever reached over TLS) and ``X-Content-Type-Options:
  nosniff``;
- every answer under the prefix: ``Cache-Control: no-store`` unless the answer set its
  own (the PDFs' ``private, no-store``): metadata, lists, PDFs and refusals are never
  kept by a cache (``/token`` sets its own, RFC 6749 §5.1).

It is the hot path (ARCHITECTURE.md): the values that change once a second (``Date``,
the default fields) are encoded once a second, the others once.
"""

from __future__ import annotations

import email.utils
from typing import Any

from ensu.config import Environment
from ensu.consumers.schemas import DEFAULT_QUOTAS
from ensu.gateway.quota.counter import decide, ratelimit_headers

Header = tuple[bytes, bytes]
DATE = b"date"
CORRELATION_ID = b"x-correlation-id"
RATELIMIT_LIMIT = b"ratelimit-limit"
CACHE_CONTROL = b"cache-control"
#: On every answer of the app (RFC 6797 §6.1: one year; no subdomain is ours to bind).
SECURITY: tuple[Header, ...] = (
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-content-type-options", b"nosniff"),
)
#: On every answer under the API prefix that does not set its own.
NO_STORE: Header = (CACHE_CONTROL, b"no-store")


class Stamps:
    """The per-second headers of one process, encoded at most once a second."""

    def __init__(self) -> None:
        self._second: int | None = None
        self._date: Header = (DATE, b"")
        self._defaults: dict[int, list[Header]] = {}

    def _roll(self, now: float) -> int:
        second = int(now)
        if second != self._second:
            self._second = second
            self._date = (DATE, email.utils.formatdate(second, usegmt=True).encode("ascii"))
            self._defaults = {}
        return second

    def date(self, now: float) -> Header:
        """``Date`` at ``now`` (IMF-fixdate, RFC 9110 §5.6.7)."""
        self._roll(now)
        return self._date

    def empty_window(self, limit: int, now: float) -> list[Header]:
        """The ``RateLimit-*`` fields of a window where nothing is counted, for ``limit``."""
        second = self._roll(now)
        fields = self._defaults.get(limit)
        if fields is None:
            fields = self._defaults[limit] = ratelimit_headers(
                decide(count=0, limit=limit, now=float(second))
            )
        return fields

    def default_window(self, environment: Environment, now: float) -> list[Header]:
        """The fields for a caller whose téléservice is not known: the environment's
        default quota (R-Q-1), nothing counted."""
        return self.empty_window(DEFAULT_QUOTAS[environment], now)


def missing_fields(headers: list[Header]) -> tuple[bool, bool]:
    """Whether ``headers`` lack ``RateLimit-Limit`` and ``Cache-Control``, in one pass."""
    ratelimit = cache = True
    for name, _ in headers:
        if name == RATELIMIT_LIMIT:
            ratelimit = False
        elif name == CACHE_CONTROL:
            cache = False
    return ratelimit, cache


def _described(description: str, **schema: Any) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string", **schema}}


#: The same headers for the OpenAPI document: every response under the API prefix.
OPENAPI_HEADERS: dict[str, dict[str, Any]] = {
    "X-Correlation-ID": _described(
        "L'identifiant de corrélation de la requête s'il s'agit d'un UUID, sinon un UUID nouveau",
        format="uuid",
    ),
    "Date": _described("Date de la réponse (RFC 9110)"),
    "RateLimit-Limit": _described(
        "Appels autorisés par minute au téléservice (quota par défaut de l'environnement"
        " si le téléservice n'est pas identifié)",
        pattern=r"^[0-9]+$",
    ),
    "RateLimit-Remaining": _described(
        "Appels restants dans la minute en cours", pattern=r"^[0-9]+$"
    ),
    "RateLimit-Reset": _described(
        "Secondes avant la fin de la minute en cours", pattern=r"^[0-9]+$"
    ),
    "Cache-Control": _described("no-store (private, no-store pour un PDF) : jamais en cache"),
    "Strict-Transport-Security": _described("HSTS (RFC 6797) : max-age=31536000"),
    "X-Content-Type-Options": _described("nosniff"),
}
