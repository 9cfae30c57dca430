"""Passwords: Argon2id (RFC 9106) through argon2-cffi, run off the event loop.

argon2-cffi's defaults are RFC 9106's second recommended option (t=3, m=64 MiB, p=4),
about 50 ms here: slow for a guesser, invisible for a person. Verification of an unknown
account runs against a dummy hash, so that the time taken does not tell which addresses
have an account.
"""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 128

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("an unknowable password, for timing only")


def problem(password: str) -> str | None:
    """Why ``password`` cannot be chosen (a French sentence for the form), or ``None``."""
    if len(password) < MIN_LENGTH:
        return f"Le mot de passe doit contenir au moins {MIN_LENGTH} caractères."
    if len(password) > MAX_LENGTH:
        return f"Le mot de passe doit contenir au plus {MAX_LENGTH} caractères."
    if password.strip() != password:
        return "Le mot de passe ne doit ni commencer ni finir par une espace."
    return None


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; as slow when ``stored`` is ``None``."""
    return await anyio.to_thread.run_sync(_verify, stored, password)
