"""JWT access tokens (RFC 9068), certificate-bound (RFC 8705 §3), ES256 only (R-GW-4).

:func:`issue` signs; :func:`verify` is the resource server's check and the hot path of the
gateway (which caches its result until ``exp``). It trusts nothing in the token before
the signature is checked with a key *we* chose by kid, under the one algorithm we allow
(RFC 8725 §3.1, §3.11), and it refuses, with one exception type and a
reason, every token that is not exactly what :func:`issue` produces:

- not three canonical base64url segments, or header/payload not a JSON object;
- header parameters other than ``alg``, ``typ``, ``kid`` (so no ``crit``, ``jku``, ``jwk``);
- ``alg`` not ``ES256`` (``none``, ``HS256`` keyed with the public key, ...);
- ``typ`` not ``at+jwt`` (RFC 9068 §4: it must not be confused with an ID token);
- unknown or retired ``kid``; bad signature;
- a required claim missing or of the wrong type: ``iss aud sub client_id iat exp jti
  cnf.x5t#S256 ensu_env id_teleservice``; ``sub`` other than ``client_id``;
- ``iss`` or ``aud`` not exactly ours (a single string; RFC 9068 §4 steps 3-4);
- expired, not yet valid (``nbf``, or ``iat`` in the future), with a bounded leeway, or a
  lifetime longer than the longest we issue.

The gateway then compares ``cnf.x5t#S256`` with the presented certificate
(:func:`binding_matches`, RFC 8705 §3.1) and asks whether the ``jti`` is revoked.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from ensu.config import Environment
from ensu.oauth.keys import (
    ALGORITHM,
    LEEWAY_SECONDS,
    MAX_TOKEN_TTL_SECONDS,
    ActiveKey,
    VerificationKey,
)

__all__ = [
    "AccessClaims",
    "IssuedToken",
    "TokenError",
    "VerificationKey",
    "binding_matches",
    "issue",
    "verify",
]

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a password
ALLOWED_ALGORITHMS = frozenset({ALGORITHM})
ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
HEADER_PARAMETERS = frozenset({"alg", "typ", "kid"})
MAX_TOKEN_LENGTH = 4096
#: 16 random bytes, 128 bits: collisions negligible (RFC 7519 §4.1.7), ids unguessable.
JTI_BYTES = 16
_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+")
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


class TokenError(Exception):
    """The token is not acceptable; ``reason`` is short and stable, for the journal only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    issuer: str
    audience: str
    subject: str
    client_id: str
    issued_at: int
    expires_at: int
    not_before: int | None
    jwt_id: str
    scopes: frozenset[str]
    #: ``cnf.x5t#S256``: the certificate the token is bound to (RFC 8705 §3.1).
    thumbprint: str
    environment: Environment
    id_teleservice: str
    kid: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: AccessClaims


def issue(
    *,
    key: ActiveKey,
    issuer: str,
    audience: str,
    client_id: str,
    id_teleservice: str,
    environment: Environment,
    thumbprint: str,
    scopes: frozenset[str],
    now: float,
    ttl_seconds: int,
) -> IssuedToken:
    """Sign an access token for ``client_id``, bound to the certificate ``thumbprint``."""
    if not 0 < ttl_seconds <= MAX_TOKEN_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be in 1..{MAX_TOKEN_TTL_SECONDS}")
    issued_at = int(now)
    claims = AccessClaims(
        issuer=issuer,
        audience=audience,
        subject=client_id,
        client_id=client_id,
        issued_at=issued_at,
        expires_at=issued_at + ttl_seconds,
        not_before=issued_at,
        jwt_id=secrets.token_urlsafe(JTI_BYTES),
        scopes=scopes,
        thumbprint=thumbprint,
        environment=environment,
        id_teleservice=id_teleservice,
        kid=key.kid,
    )
    header = {"typ": TOKEN_TYPE, "alg": ALGORITHM, "kid": key.kid}
    payload = json.dumps(_payload(claims), separators=(",", ":")).encode("utf-8")
    token = jws.serialize_compact(header, payload, key.key, algorithms=[ALGORITHM])
    return IssuedToken(token=token, claims=claims)


def _payload(claims: AccessClaims) -> dict[str, object]:
    return {
        "iss": claims.issuer,
        "aud": claims.audience,
        "sub": claims.subject,
        "client_id": claims.client_id,
        "iat": claims.issued_at,
        "nbf": claims.not_before,
        "exp": claims.expires_at,
        "jti": claims.jwt_id,
        "scope": " ".join(sorted(claims.scopes)),
        "cnf": {"x5t#S256": claims.thumbprint},
        "ensu_env": claims.environment.value,
        "id_teleservice": claims.id_teleservice,
    }


# -- verification ----------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")  # NaN and Infinity are not JSON


def _decode_segment(segment: bytes) -> bytes:
    """Strict base64url: alphabet, no padding, and canonical (re-encodes to itself)."""
    if _SEGMENT.fullmatch(segment) is None:
        raise TokenError("malformed")
    try:
        raw = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment:
        raise TokenError("malformed")
    return raw


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        raise TokenError("malformed") from None
    if not isinstance(value, dict):
        raise TokenError("malformed")
    return value


def _split(token: str) -> tuple[bytes, bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed")
    parts = token.encode("ascii", "replace").split(b".")
    if len(parts) != 3:
        raise TokenError("malformed")
    return parts[0], parts[1], parts[2]


def _select_key(
    header: dict[str, Any], keys: Mapping[str, VerificationKey], now: float
) -> VerificationKey:
    """Check the header against our allow-lists and pick the key by ``kid``."""
    if not set(header) <= HEADER_PARAMETERS:
        raise TokenError("header_parameter_not_allowed")
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise TokenError("alg_not_allowed")
    if header.get("typ") not in ACCEPTED_TYPES:
        raise TokenError("wrong_typ")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenError("unknown_kid")
    if key.not_after is not None and now >= key.not_after:
        raise TokenError("key_retired")
    return key


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError(f"claim_{name}")
    return value


def _time(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"claim_{name}")
    if isinstance(value, float) and not math.isfinite(value):  # 1e400 parses as inf
        raise TokenError(f"claim_{name}")
    return int(value)


def _optional_time(claims: dict[str, Any], name: str) -> int | None:
    return None if claims.get(name) is None else _time(claims, name)


def _thumbprint(claims: dict[str, Any]) -> str:
    cnf = claims.get("cnf")
    value = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    if not isinstance(value, str) or _THUMBPRINT.fullmatch(value) is None:
        raise TokenError("claim_cnf")
    return value


def _check_times(claims: AccessClaims, now: float, leeway: int) -> None:
    if now >= claims.expires_at + leeway:
        raise TokenError("expired")
    if claims.issued_at > now + leeway:
        raise TokenError("not_yet_valid")
    if claims.not_before is not None and claims.not_before > now + leeway:
        raise TokenError("not_yet_valid")
    if not 0 < claims.expires_at - claims.issued_at <= MAX_TOKEN_TTL_SECONDS:
        raise TokenError("lifetime")


def _environment(claims: dict[str, Any]) -> Environment:
    try:
        return Environment(_string(claims, "ensu_env"))
    except ValueError:
        raise TokenError("claim_ensu_env") from None


def _claims(payload: dict[str, Any], kid: str) -> AccessClaims:
    scope = payload.get("scope", "")
    if not isinstance(scope, str):
        raise TokenError("claim_scope")
    return AccessClaims(
        issuer=_string(payload, "iss"),
        audience=_string(payload, "aud"),
        subject=_string(payload, "sub"),
        client_id=_string(payload, "client_id"),
        issued_at=_time(payload, "iat"),
        expires_at=_time(payload, "exp"),
        not_before=_optional_time(payload, "nbf"),
        jwt_id=_string(payload, "jti"),
        scopes=frozenset(scope.split()),
        thumbprint=_thumbprint(payload),
        environment=_environment(payload),
        id_teleservice=_string(payload, "id_teleservice"),
        kid=kid,
    )


def verify(
    token: str,
    *,
    keys: Mapping[str, VerificationKey],
    issuer: str,
    audience: str,
    now: float,
    leeway: int = LEEWAY_SECONDS,
) -> AccessClaims:
    """The claims of ``token`` if it is one of ours, valid at ``now`` (POSIX seconds).

    Raises :class:`TokenError` otherwise (see the module docstring for every case).
    """
    header_segment, payload_segment, signature_segment = _split(token)
    header = _json_object(_decode_segment(header_segment))
    key = _select_key(header, keys, now)
    _decode_segment(signature_segment)  # canonical encoding: one token, one spelling
    try:
        jws.deserialize_compact(token, key.key, algorithms=[ALGORITHM])
    except (JoseError, ValueError, TypeError):
        raise TokenError("bad_signature") from None
    claims = _claims(_json_object(_decode_segment(payload_segment)), key.kid)
    if claims.issuer != issuer:
        raise TokenError("wrong_iss")
    if claims.audience != audience:
        raise TokenError("wrong_aud")
    if claims.subject != claims.client_id:
        raise TokenError("sub_not_client")
    _check_times(claims, now, leeway)
    return claims


def binding_matches(claims: AccessClaims, thumbprint: str) -> bool:
    """The token is bound to the presented certificate (RFC 8705 §3.1), constant-time."""
    return hmac.compare_digest(claims.thumbprint.encode(), thumbprint.encode())
