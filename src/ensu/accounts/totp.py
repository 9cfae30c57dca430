"""Time-based one-time passwords, RFC 6238 (HOTP of RFC 4226 over 30-second steps).

Staff sign in with a password and a code from an authenticator application. A code is
accepted for its own step and the one before or after (RFC 6238 §5.2: clock drift and
typing time), and the service then refuses any code of a step not later than the last
one accepted (:func:`ensu.accounts.service.check_second_factor`): a code is never
accepted twice, even within its 90 seconds (RFC 6238 §5.2, "MUST NOT" reuse).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
#: Steps accepted either side of the current one.
DRIFT_STEPS = 1
ISSUER = "ENSU Documents"


def new_secret() -> str:
    """160 random bits (RFC 4226 §4 recommends 160), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int, *, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 of the counter, dynamically truncated."""
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    binary = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def step_at(unix_time: float) -> int:
    return int(unix_time // STEP_SECONDS)


def code_at(secret: str, unix_time: float) -> str:
    """The code an authenticator shows at ``unix_time``."""
    return hotp(_key(secret), step_at(unix_time))


def matching_step(secret: str, code: str, unix_time: float) -> int | None:
    """The time step whose code is ``code`` (current one first, then ±1), or ``None``."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = _key(secret)
    current = step_at(unix_time)
    for step in (current, current - DRIFT_STEPS, current + DRIFT_STEPS):
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str) -> str:
    """The ``otpauth://`` URI an authenticator reads from a QR code (Key Uri Format)."""
    label = quote(f"{ISSUER}:{account}")
    query = urlencode(
        {"secret": secret, "issuer": ISSUER, "digits": DIGITS, "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"
