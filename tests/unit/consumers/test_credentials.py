"""Identifiers and secrets of téléservices: SIRET (R-HAB-1), generated identifiers,
scrypt-hashed client secrets compared in constant time (RFC 6749 §2.3.1)."""

from __future__ import annotations

import re

import pytest

from ensu.consumers import credentials


@pytest.mark.parametrize(
    ("siret", "valid"),
    [
        ("13000000000005", True),
        ("73282932000074", True),  # a real-world SIRET format, Luhn-valid
        ("13000000000006", False),  # wrong check digit
        ("1300000000000", False),  # 13 digits
        ("1300000000000A", False),
        ("35600000000048", True),  # La Poste's head office: Luhn-valid
        ("35600000012341", True),  # La Poste establishment: digit sum multiple of 5
        ("35600000012342", False),  # neither rule
    ],
)
def test_siret(siret: str, valid: bool) -> None:
    assert credentials.is_valid_siret(siret) is valid


def test_generated_identifiers() -> None:
    ids = {credentials.new_id_teleservice() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"TS-[A-Z2-7]{20}", value) for value in ids)
    clients = {credentials.new_client_id() for _ in range(200)}
    assert len(clients) == 200
    assert all(re.fullmatch(r"[a-z2-7]{26}", value) for value in clients)
    assert all(credentials.is_valid_identifier(value) for value in ids | clients)


@pytest.mark.parametrize("value", ["ab", "-abc", "a b", "a:b", "x" * 65, "é" * 5])
def test_refused_identifiers(value: str) -> None:
    assert not credentials.is_valid_identifier(value)


def test_secret_hash_round_trip() -> None:
    secret = credentials.new_client_secret()
    stored = credentials.hash_secret(secret)
    assert stored.startswith("scrypt$16384$8$1$")
    assert secret not in stored
    assert credentials.verify_secret(secret, stored)
    assert not credentials.verify_secret(secret[:-1], stored)
    assert credentials.hash_secret(secret) != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "stored", [None, "", "scrypt$1$2", "bcrypt$16384$8$1$AA$AA", "scrypt$x$8$1$AA$AA"]
)
def test_unusable_hashes_never_match(stored: str | None) -> None:
    assert not credentials.verify_secret("anything", stored)
