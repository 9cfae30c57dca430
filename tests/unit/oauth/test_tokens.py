"""Access tokens (R-GW-4): RFC 9068 shape, ES256 only, certificate binding (RFC 8705 §3),
``jti`` entropy, and each refusal reason of ``verify`` on a hand-made example (the
property-based suite in ``test_token_mutants.py`` covers them at volume).
"""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from ensu.config import Environment
from ensu.oauth import tokens
from ensu.oauth.keys import ActiveKey, VerificationKey

ISSUER = "https://ensu.example"
AUDIENCE = "https://ensu.example/ensudocuments/v1"
NOW = 1_800_000_000
THUMBPRINT = "A" * 43


def _key() -> ActiveKey:
    key = ECKey.generate_key("P-256")
    return ActiveKey(kid=key.thumbprint(), key=key)


KEY = _key()
KEYS = {KEY.kid: VerificationKey(kid=KEY.kid, key=KEY.key, not_after=None)}


def _issue(**changes: object) -> tokens.IssuedToken:
    arguments: dict[str, object] = {
        "key": KEY,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "client_id": "client-1",
        "id_teleservice": "TS-1",
        "environment": Environment.SANDBOX,
        "thumbprint": THUMBPRINT,
        "scopes": frozenset({"documents"}),
        "now": NOW,
        "ttl_seconds": 600,
    }
    arguments.update(changes)
    return tokens.issue(**arguments)  # type: ignore[arg-type]


def _verify(token: str, now: float = NOW + 1) -> tokens.AccessClaims:
    return tokens.verify(token, keys=KEYS, issuer=ISSUER, audience=AUDIENCE, now=now)


def _decode(segment: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    return _decode(header), _decode(payload)


def test_issued_token_has_the_rfc_9068_shape() -> None:
    """R-GW-4: typ at+jwt, ES256, kid; iss, aud, sub = client_id, iat/nbf/exp, jti, cnf."""
    issued = _issue()
    header, payload = _segments(issued.token)
    assert header == {"typ": "at+jwt", "alg": "ES256", "kid": KEY.kid}
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert payload["sub"] == payload["client_id"] == "client-1"
    assert payload["iat"] == payload["nbf"] == NOW
    assert payload["exp"] == NOW + 600
    assert payload["cnf"] == {"x5t#S256": THUMBPRINT}
    assert payload["scope"] == "documents"
    assert payload["ensu_env"] == "sandbox"
    assert payload["id_teleservice"] == "TS-1"
    assert _verify(issued.token) == issued.claims


def test_jti_has_at_least_128_bits_of_entropy() -> None:
    """Every jti is 16 random bytes: all distinct and every bit position balanced."""
    jtis = [_issue().claims.jwt_id for _ in range(2000)]
    assert len(set(jtis)) == len(jtis)
    raw = [base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4)) for jti in jtis]
    assert {len(value) for value in raw} == {16}
    for bit in range(128):
        ones = sum((value[bit // 8] >> (bit % 8)) & 1 for value in raw)
        assert 800 < ones < 1200, f"bit {bit} set {ones} times in 2000"


def test_ttl_is_bounded() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        _issue(ttl_seconds=3601)


def test_binding_matches_only_the_bound_certificate() -> None:
    """RFC 8705 §3.1: cnf.x5t#S256 against the presented certificate."""
    claims = _issue().claims
    assert tokens.binding_matches(claims, THUMBPRINT)
    assert not tokens.binding_matches(claims, "B" * 43)


def test_expiry_with_bounded_leeway() -> None:
    """Accepted until exp + 30 s of skew, refused from then on."""
    token = _issue().token
    assert _verify(token, now=NOW + 600 + 29)
    with pytest.raises(tokens.TokenError, match="expired"):
        _verify(token, now=NOW + 600 + 30)


def test_not_yet_valid_with_bounded_leeway() -> None:
    """A token from a clock 30 s ahead is accepted; 31 s ahead is not."""
    token = _issue().token
    assert _verify(token, now=NOW - 30)
    with pytest.raises(tokens.TokenError, match="not_yet_valid"):
        _verify(token, now=NOW - 31)


def test_retired_key_is_refused() -> None:
    token = _issue().token
    retired = {KEY.kid: VerificationKey(kid=KEY.kid, key=KEY.key, not_after=NOW + 100.0)}
    assert tokens.verify(token, keys=retired, issuer=ISSUER, audience=AUDIENCE, now=NOW + 99)
    with pytest.raises(tokens.TokenError, match="key_retired"):
        tokens.verify(token, keys=retired, issuer=ISSUER, audience=AUDIENCE, now=NOW + 100)


@pytest.mark.parametrize(
    "garbage",
    ["", "a.b", "a.b.c.d", "é.é.é", "x" * 5000, "eyJ9.eyJ9.AA", "bnVsbA.bnVsbA.AA"],
)
def test_garbage_is_malformed(garbage: str) -> None:
    with pytest.raises(tokens.TokenError, match="malformed"):
        _verify(garbage)


def test_non_canonical_base64_is_refused() -> None:
    """One token, one spelling: trailing bits of the last character must be zero."""
    token = _issue().token
    head, _, signature = token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    # 64 bytes = 86 characters, the last carrying 2 data bits and 4 padding bits.
    twisted = signature[:-1] + alphabet[last | 1]
    assert twisted != signature
    with pytest.raises(tokens.TokenError, match="malformed"):
        _verify(f"{head}.{twisted}")


def test_infinite_numbers_are_refused() -> None:
    """``1e400`` parses as infinity in Python's json: it must not crash ``verify``."""
    header = {"typ": "at+jwt", "alg": "ES256", "kid": KEY.kid}
    _, payload = _segments(_issue().token)
    body = json.dumps(payload).replace(f'"exp": {NOW + 600}', '"exp": 1e400').encode()
    token = jws.serialize_compact(header, body, KEY.key, algorithms=["ES256"])
    with pytest.raises(tokens.TokenError, match="claim_exp"):
        _verify(token)
