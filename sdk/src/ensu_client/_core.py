"""What the sync and the async clients share, without I/O: the headers of a call, the
reading of an answer into a value or an error, the retry decision, the token's lifetime,
the digest check of a content (R-CON-1).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from ensu_client._config import RetryPolicy
from ensu_client._exceptions import (
    ApiError,
    DigestMismatch,
    TokenError,
    UnexpectedResponse,
    family_of,
)
from ensu_client._models import Document, DocumentRef
from ensu_client._version import __version__

API = "/ensudocuments/v1"
PROBLEM_JSON = "application/problem+json"
USER_AGENT = f"ensu-client/{__version__}"
#: The statuses worth retrying: the server asks to come back (Retry-After).
RETRYABLE = frozenset({429, 503})
#: A token is renewed when less than this share of its life is left, at most a minute
#: ahead: a call never leaves with a token that expires on its way.
RENEW_SHARE = 0.1
RENEW_AHEAD_MAX = 60.0


def monotonic() -> float:
    return time.monotonic()


def sleep(seconds: float) -> None:
    """The wait before a retry (the one place the sync client sleeps)."""
    time.sleep(seconds)


async def async_sleep(seconds: float) -> None:
    await anyio.sleep(seconds)


def new_correlation_id() -> str:
    """A fresh UUID for ``X-Correlation-ID`` (one per call; its retries keep it)."""
    return str(uuid.uuid4())


def api_headers(*, token: str, teleservice: str, correlation_id: str) -> dict[str, str]:
    """Every header the contract requires on a documents call."""
    return {
        "Authorization": f"Bearer {token}",
        "ID_Teleservice": teleservice,
        "X-Correlation-ID": correlation_id,
    }


def document_path(target: Document | DocumentRef | str, *, content: bool = False) -> str:
    """The path of a document's metadata, or of its content."""
    if isinstance(target, Document):
        return target.contenu if content else target.contenu.removesuffix("/contenu")
    ref = target if isinstance(target, DocumentRef) else DocumentRef.parse(target)
    path = f"{API}/documents/{ref.type.value}/{httpx.URL(ref.value).raw_path.decode()}"
    return f"{path}/contenu" if content else path


def list_params(
    *,
    siren: str | None,
    idsp: str | None,
    code_document: Sequence[str],
    date_debut: dt.date | str | None,
    date_fin: dt.date | str | None,
    page: int,
    taille: int | None,
    reference_demande: str | None,
) -> list[tuple[str, str]]:
    """The query of ``GET /documents``, in the contract's names."""
    params: list[tuple[str, str]] = []
    for name, value in (("siren", siren), ("idsp", idsp)):
        if value is not None:
            params.append((name, value))
    params += [("codeDocument", code) for code in code_document]
    for name, date in (("dateDebut", date_debut), ("dateFin", date_fin)):
        if date is not None:
            params.append((name, date.isoformat() if isinstance(date, dt.date) else date))
    params.append(("page", str(page)))
    if taille is not None:
        params.append(("taille", str(taille)))
    if reference_demande is not None:
        params.append(("referenceDemande", reference_demande))
    return params


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def retry_delay(
    policy: RetryPolicy, response: httpx.Response, *, attempt: int, started: float
) -> float | None:
    """How long to wait before attempt ``attempt + 1``, or None: do not retry."""
    if response.status_code not in RETRYABLE or attempt >= policy.max_attempts:
        return None
    delay = retry_after(response.headers)
    delay = policy.default_delay if delay is None else delay
    if monotonic() - started + delay > policy.budget:
        return None
    return delay


def _json(response: httpx.Response, correlation_id: str | None) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponse(
            f"HTTP {response.status_code}: the body is not JSON",
            status=response.status_code,
            correlation_id=correlation_id,
        ) from None


def api_error(response: httpx.Response, *, correlation_id: str) -> ApiError | UnexpectedResponse:
    """The error a refusal stands for: its family's class when it is a problem document
    with a code, :class:`UnexpectedResponse` otherwise."""
    echoed = response.headers.get("x-correlation-id") or correlation_id
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    problem: Any = None
    if media_type == PROBLEM_JSON:
        try:
            problem = response.json()
        except ValueError:
            problem = None
    if not isinstance(problem, dict) or not isinstance(problem.get("code"), str):
        return UnexpectedResponse(
            f"HTTP {response.status_code} {response.reason_phrase} without a problem document",
            status=response.status_code,
            correlation_id=echoed,
        )
    family = family_of(code=problem["code"], status=response.status_code)
    message = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    return family(
        message,
        code=problem["code"],
        status=response.status_code,
        correlation_id=problem.get("correlationId") or echoed,
        problem=problem,
        retry_after=retry_after(response.headers),
    )


def answer_json(response: httpx.Response, *, correlation_id: str) -> Any:
    """The JSON of a 200, or the error the answer stands for."""
    if response.status_code != 200:
        raise api_error(response, correlation_id=correlation_id)
    return _json(response, correlation_id)


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    #: On the monotonic clock: when to fetch the next one.
    renew_at: float


def token_request(
    *, client_id: str, client_secret: str | None
) -> tuple[dict[str, str], httpx.Auth | None]:
    """The form and the client authentication of ``POST /token``: the certificate alone
    (``tls_client_auth``, RFC 8705 §2.1), or HTTP Basic on top of it
    (``client_secret_basic``, RFC 6749 §2.3.1, form-urlencoded credentials)."""
    form = {"grant_type": "client_credentials", "client_id": client_id}
    if client_secret is None:
        return form, None
    return form, httpx.BasicAuth(_form_encoded(client_id), _form_encoded(client_secret))


def _form_encoded(value: str) -> str:
    return str(httpx.QueryParams({"v": value})).removeprefix("v=")


def read_token(response: httpx.Response, *, requested_at: float) -> Token:
    """The token of a 200 (RFC 6749 §5.1), or :class:`TokenError` (§5.2)."""
    body = _json(response, None) if response.content else {}
    if response.status_code != 200:
        error = str(body.get("error", "invalid_client")) if isinstance(body, dict) else "?"
        description = body.get("error_description") if isinstance(body, dict) else None
        raise TokenError(
            f"POST /token refused: {error}" + (f" ({description})" if description else ""),
            status=response.status_code,
            error=error,
            description=description,
            retry_after=retry_after(response.headers),
        )
    try:
        value = str(body["access_token"])
        lifetime = float(body["expires_in"])
        if str(body.get("token_type", "")).lower() != "bearer":
            raise ValueError(body.get("token_type"))
    except (KeyError, TypeError, ValueError):
        raise TokenError(
            "POST /token answered no bearer token", status=200, error="invalid_response"
        ) from None
    ahead = min(RENEW_AHEAD_MAX, lifetime * RENEW_SHARE)
    return Token(value, requested_at + lifetime - ahead)


def repr_digest_sha256(headers: Mapping[str, str]) -> bytes | None:
    """The ``sha-256`` member of ``Repr-Digest`` (RFC 9530 §3, a structured-field
    dictionary of byte sequences ``:base64:``), or None."""
    for member in headers.get("repr-digest", "").split(","):
        name, equals, value = member.strip().partition("=")
        value = value.split(";")[0].strip()
        if equals and name.strip().lower() == "sha-256" and value[:1] == value[-1:] == ":":
            try:
                return base64.b64decode(value[1:-1], validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


class DigestCheck:
    """Hashes a content as it arrives; :meth:`verify` compares it to ``Repr-Digest``
    and, when known, to the metadata's ``empreinteSha256``."""

    def __init__(
        self, response: httpx.Response, *, correlation_id: str, expected: str | None
    ) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self._announced = repr_digest_sha256(response.headers)
        self._expected = expected
        self.correlation_id = correlation_id
        length = response.headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def verify(self) -> str:
        """The content's SHA-256 (hex), or :class:`DigestMismatch`."""
        actual = self._hash.digest()
        if self._announced is None:
            self._mismatch("the answer has no Repr-Digest sha-256", "(absent)", actual)
        elif actual != self._announced:
            self._mismatch("the content does not match its Repr-Digest", self._announced, actual)
        elif self._expected is not None and actual.hex() != self._expected.lower():
            self._mismatch(
                "the content does not match the metadata's empreinteSha256",
                self._expected,
                actual,
            )
        return actual.hex()

    def _mismatch(self, message: str, expected: bytes | str, actual: bytes) -> None:
        shown = expected if isinstance(expected, str) else expected.hex()
        raise DigestMismatch(
            f"{message}: expected {shown}, got {actual.hex()}",
            correlation_id=self.correlation_id,
            expected=shown,
            actual=actual.hex(),
        )
