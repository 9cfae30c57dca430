"""Identifiers of subjects and documents: SIREN (Luhn), IDSP, IDENSUA (R-DATA-2, R-DATA-3)."""

from __future__ import annotations

import re
import secrets

SIREN_PATTERN = re.compile(r"[0-9]{9}")
IDSP_PATTERN = re.compile(r"[A-Z0-9]{6,16}")
IDENSUA_LENGTH = 64
IDENSUA_PATTERN = re.compile(r"[A-Za-z0-9_-]{64}|[A-Za-z0-9_-]{128}")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum (as SIREN numbers do)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_valid_siren(value: str) -> bool:
    """Nine digits, Luhn-valid (R-DATA-2)."""
    return SIREN_PATTERN.fullmatch(value) is not None and luhn_valid(value)


def is_valid_idsp(value: str) -> bool:
    return IDSP_PATTERN.fullmatch(value) is not None


def complete_siren(eight_digits: str) -> str:
    """The SIREN made of ``eight_digits`` and the Luhn check digit."""
    if not re.fullmatch(r"[0-9]{8}", eight_digits):
        raise ValueError("eight digits expected")
    for check in "0123456789":
        if luhn_valid(eight_digits + check):
            return eight_digits + check
    raise AssertionError("unreachable: one check digit always fits")


def new_idensua() -> str:
    """An opaque, unguessable identifier: 48 random bytes, 64 base64url characters."""
    return secrets.token_urlsafe(48)
