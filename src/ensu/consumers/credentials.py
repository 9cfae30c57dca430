"""Identifiers and secrets of téléservices: SIRET, ``ID_Teleservice``, ``client_id``, secrets.

Secrets are 256-bit random strings shown once; only an scrypt hash with a per-secret salt
is stored, and comparison is constant-time (RFC 6749 §2.3.1, RFC 9700 §2.5 on client
authentication). scrypt costs ~60 ms here on purpose: callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from ensu.documents.identifiers import luhn_valid

SIRET_PATTERN = re.compile(r"[0-9]{14}")
#: La Poste's establishments share SIREN 356000000 and use their own checksum rule.
LA_POSTE_SIREN = "356000000"
#: Identifiers that a partner chooses must be safe in headers, URLs and HTTP Basic.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")
BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_SALT_BYTES, SCRYPT_HASH_BYTES = 16, 32
#: A hash of an unknowable secret, checked when a client is unknown so that timing does
#: not tell which client ids exist.
_DUMMY_SALT = b"ensu-dummy-salt!"


def is_valid_siret(value: str) -> bool:
    """Fourteen digits, Luhn-valid (La Poste: digit sum a multiple of 5)."""
    if SIRET_PATTERN.fullmatch(value) is None:
        return False
    if value.startswith(LA_POSTE_SIREN) and sum(int(char) for char in value) % 5 == 0:
        return True
    return luhn_valid(value)


#: An e-mail address as people type it: one ``@``, a dotted domain, no spaces (RFC 5321
#: limits: 64 octets before the ``@``, 254 in all). Deliverability is the mail's business.
EMAIL_PATTERN = re.compile(
    r"[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


def is_valid_email(value: str) -> bool:
    """A plausible e-mail address (R-HAB-1 contacts), at most 254 characters."""
    return len(value) <= 254 and EMAIL_PATTERN.fullmatch(value) is not None


def is_valid_identifier(value: str) -> bool:
    """A chosen ``client_id`` or ``ID_Teleservice``: 3-64 of ``A-Z a-z 0-9 . _ -``."""
    return IDENTIFIER_PATTERN.fullmatch(value) is not None


def new_id_teleservice() -> str:
    """``TS-`` and 20 base32 characters (100 bits): opaque, readable, easy to dictate."""
    return "TS-" + "".join(secrets.choice(BASE32_ALPHABET) for _ in range(20))


def new_client_id() -> str:
    """An opaque client id: 26 lowercase base32 characters (130 bits)."""
    return "".join(secrets.choice(BASE32_ALPHABET.lower()) for _ in range(26))


def new_client_secret() -> str:
    """A 256-bit secret, base64url: shown once, never stored."""
    return secrets.token_urlsafe(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_HASH_BYTES, maxmem=2**26
    )


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh random salt."""
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str | None) -> bool:
    """True when ``secret`` matches ``stored``; constant-time, and as slow when
    ``stored`` is ``None`` (unknown client) as when it is not."""
    if stored is None:
        _scrypt(secret, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(candidate, _unb64(digest))
