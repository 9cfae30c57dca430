"""Signing a delivery, and what a receiver checks (HMAC-SHA256 with a timestamp).

Headers of each delivery::

    X-Ensu-Event: security.event
    X-Ensu-Delivery: 0d0f7a8e-…          (the same on every retry and replay)
    X-Ensu-Timestamp: 1765161600
    X-Ensu-Signature: t=1765161600,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside what is signed, so a receiver that refuses a ``t`` older than a
few minutes (:data:`TOLERANCE_SECONDS`) refuses a captured delivery played again later;
deduplicating by ``X-Ensu-Delivery`` refuses it within that window. Comparisons are
constant-time. :func:`verify` is the receiver's side, standard library only: a consumer
can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydantic import SecretStr

from ensu.oauth import keys

SIGNATURE_HEADER = "X-Ensu-Signature"
TIMESTAMP_HEADER = "X-Ensu-Timestamp"
EVENT_HEADER = "X-Ensu-Event"
DELIVERY_HEADER = "X-Ensu-Delivery"
TOLERANCE_SECONDS = 300
#: The associated data of a sealed secret: a signing key's blob does not open as one.
_LABEL = "ensu webhook secrets v1"


class SignatureError(ValueError):
    """The signature header is malformed, too old, or does not match."""


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ensu-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance: int = TOLERANCE_SECONDS
) -> int:
    """The signed timestamp when ``header`` signs ``body`` with ``secret`` within
    ``tolerance`` seconds of ``now``; :class:`SignatureError` otherwise."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        raise SignatureError("malformed signature header") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance: a replay?")
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature mismatch")
    return timestamp


def seal(secret: str, *, secret_key: SecretStr) -> bytes:
    """The subscription's secret sealed for storage, as the token signing keys are
    (:func:`ensu.oauth.keys.seal`), this module's label as the associated data."""
    return keys.seal(secret.encode(), kid=_LABEL, wrapping=keys.wrapping_key(secret_key))


def unseal(sealed: bytes, *, secret_key: SecretStr) -> str:
    try:
        opened = keys.unseal(sealed, kid=_LABEL, wrapping=keys.wrapping_key(secret_key))
    except keys.KeyDecryptionError:
        raise SignatureError(
            "the webhook secret does not open (ENSU_SECRET_KEY changed?)"
        ) from None
    return opened.decode()
