"""RFC 4226 and RFC 6238 test vectors, and the drift window (R-HAB-2: staff's second
factor)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from ensu.accounts import totp

RFC_KEY = b"12345678901234567890"
RFC_SECRET = base64.b32encode(RFC_KEY).decode()


@pytest.mark.parametrize(
    ("counter", "expected"),
    list(
        enumerate(
            [
                "755224",
                "287082",
                "359152",
                "969429",
                "338314",
                "254676",
                "287922",
                "162583",
                "399871",
                "520489",
            ]
        )
    ),
)
def test_hotp_matches_rfc4226_appendix_d(counter: int, expected: str) -> None:
    assert totp.hotp(RFC_KEY, counter) == expected


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_totp_matches_rfc6238_appendix_b_sha1(unix_time: int, expected: str) -> None:
    assert totp.hotp(RFC_KEY, totp.step_at(unix_time), digits=8) == expected


def test_a_code_matches_its_step_and_one_either_side_only() -> None:
    secret = totp.new_secret()
    now = 1_800_000_000.0
    code = totp.code_at(secret, now)
    assert totp.matching_step(secret, code, now) == totp.step_at(now)
    assert totp.matching_step(secret, code, now + 30) == totp.step_at(now)
    assert totp.matching_step(secret, code, now - 30) == totp.step_at(now)
    assert totp.matching_step(secret, code, now + 90) is None
    assert totp.matching_step(secret, "12345", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None


def test_secrets_are_160_bits_and_the_uri_names_issuer_and_account() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20
    uri = urlsplit(totp.provisioning_uri(secret, "agent@dgfip.example"))
    assert uri.scheme == "otpauth"
    assert uri.netloc == "totp"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["ENSU Documents"]
    assert "agent%40dgfip.example" in uri.path or "agent@dgfip.example" in uri.path
