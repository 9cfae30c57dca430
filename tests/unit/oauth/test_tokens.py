"""Access tokens (R-GW-4): RFC 9068 shape, ES256 only, certificate binding (RFC 8705 §3),
``jti`` entropy, and each refusal reason of ``verify`` on a hand-made example (the
property-based suite in ``test_token_mutants.py`` covers them at volume).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

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


# -- each refusal by its exact reason (what the journal records), and the boundaries ----


def _reason(token: str, now: float = NOW + 1, keys: dict[str, VerificationKey] = KEYS) -> str:
    with pytest.raises(tokens.TokenError) as caught:
        tokens.verify(token, keys=keys, issuer=ISSUER, audience=AUDIENCE, now=now)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(
    drop: tuple[str, ...] = (), header: Mapping[str, object] | None = None, /, **claims: object
) -> str:
    """A genuinely signed token whose payload is the issued one with ``claims`` changed
    and the claims ``drop`` removed."""
    _, payload = _segments(_issue().token)
    payload.update(claims)
    for name in drop:
        del payload[name]
    head = dict(header or {"typ": "at+jwt", "alg": "ES256", "kid": KEY.kid})
    return jws.serialize_compact(head, json.dumps(payload).encode(), KEY.key, algorithms=["ES256"])


def test_ttl_bounds_are_inclusive() -> None:
    """``issue`` signs lifetimes of 1 to 3600 s (``MAX_TOKEN_TTL_SECONDS``), no other."""
    assert _issue(ttl_seconds=1).claims.expires_at == NOW + 1
    assert _issue(ttl_seconds=3600).claims.expires_at == NOW + 3600
    for ttl in (0, -1, 3601):
        with pytest.raises(ValueError, match=r"^ttl_seconds must be in 1\.\.3600$"):
            _issue(ttl_seconds=ttl)


def test_scopes_round_trip_space_separated_and_sorted() -> None:
    """RFC 9068 §2.2.3: ``scope`` is a space-separated list; absent means none."""
    issued = _issue(scopes=frozenset({"b", "a"}))
    _, payload = _segments(issued.token)
    assert payload["scope"] == "a b"
    assert _verify(issued.token).scopes == frozenset({"a", "b"})
    assert _verify(_signed(("scope",))).scopes == frozenset()


def test_payload_is_compact_json() -> None:
    """The JWS payload is serialised without whitespace (the token travels in a header)."""
    payload = _issue().token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b" " not in raw
    assert raw == json.dumps(json.loads(raw), separators=(",", ":")).encode()


def test_length_limit_is_inclusive() -> None:
    """``MAX_TOKEN_LENGTH`` characters are read (and fail on their signature), one more
    is malformed before anything is decoded."""
    head, _, signature = _issue().token.split(".")
    filler = tokens.MAX_TOKEN_LENGTH - len(head) - len(signature) - 2
    assert filler % 4 != 1  # a base64url length
    longest = f"{head}.{'A' * filler}.{signature}"
    assert len(longest) == tokens.MAX_TOKEN_LENGTH
    assert _reason(longest) == "bad_signature"
    assert _reason(f"{head}.{'A' * (filler + 1)}.{signature}") == "malformed"


@pytest.mark.parametrize(
    "garbage", ["", "a.b", "a.b.c.d", "é.é.é", "x" * 5000, "eyJ9.eyJ9.AA", "bnVsbA.bnVsbA.AA"]
)
def test_garbage_is_malformed_exactly(garbage: str) -> None:
    assert _reason(garbage) == "malformed"


def test_decode_segment_is_strict_base64url() -> None:
    """The alphabet, no padding, and a canonical spelling; any final character."""
    assert tokens._decode_segment(b"AAAX") == b"\x00\x00\x17"
    assert tokens._decode_segment(b"AAE") == b"\x00\x01"
    assert tokens._decode_segment(b"AQ") == b"\x01"
    for segment in (b"AAE=", b"AA+/", b"AAF", b"AR", b"A", b"A" * 5, b""):
        with pytest.raises(tokens.TokenError) as caught:
            tokens._decode_segment(segment)
        assert caught.value.reason == "malformed"


def test_non_finite_constants_are_not_json() -> None:
    """``NaN`` in the header is malformed JSON, not an unknown ``kid``."""
    head = _b64(b'{"typ":"at+jwt","alg":"ES256","kid":NaN}')
    _, body, signature = _issue().token.split(".")
    assert _reason(f"{head}.{body}.{signature}") == "malformed"
    assert _reason(f"{_b64(b'[1]')}.{body}.{signature}") == "malformed"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "at+jwt", "alg": "ES256"}, "unknown_kid"),
        ({"typ": "at+jwt", "alg": "ES256", "kid": 1}, "unknown_kid"),
        ({"typ": "at+jwt", "alg": "ES256", "kid": [KEY.kid]}, "unknown_kid"),  # unhashable
        ({"typ": "at+jwt", "alg": "ES256", "kid": "other"}, "unknown_kid"),
        ({"typ": "at+jwt", "alg": "HS256", "kid": KEY.kid}, "alg_not_allowed"),
        ({"typ": "at+jwt", "kid": KEY.kid}, "alg_not_allowed"),
        ({"typ": "JWT", "alg": "ES256", "kid": KEY.kid}, "wrong_typ"),
        ({"alg": "ES256", "kid": KEY.kid}, "wrong_typ"),
        (
            {"typ": "at+jwt", "alg": "ES256", "kid": KEY.kid, "jku": "x"},
            "header_parameter_not_allowed",
        ),
    ],
)
def test_header_refusals(header: dict[str, object], reason: str) -> None:
    head = _b64(json.dumps(header).encode())
    _, body, signature = _issue().token.split(".")
    assert _reason(f"{head}.{body}.{signature}") == reason


def test_media_type_spelling_of_typ_is_accepted() -> None:
    """RFC 9068 §4: ``application/at+jwt`` is the same type."""
    header = {"typ": "application/at+jwt", "alg": "ES256", "kid": KEY.kid}
    assert _verify(_signed((), header)).client_id == "client-1"


def test_key_retired_exactly_at_not_after() -> None:
    token = _issue().token
    retired = {KEY.kid: VerificationKey(kid=KEY.kid, key=KEY.key, not_after=NOW + 100.0)}
    assert _reason(token, now=NOW + 100, keys=retired) == "key_retired"


def test_bad_signature() -> None:
    other = _key()
    foreign = tokens.issue(
        key=ActiveKey(kid=KEY.kid, key=other.key),
        issuer=ISSUER,
        audience=AUDIENCE,
        client_id="client-1",
        id_teleservice="TS-1",
        environment=Environment.SANDBOX,
        thumbprint=THUMBPRINT,
        scopes=frozenset(),
        now=NOW,
        ttl_seconds=600,
    )
    assert _reason(foreign.token) == "bad_signature"


STRING_CLAIMS = ("iss", "aud", "sub", "client_id", "jti", "ensu_env", "id_teleservice")


@pytest.mark.parametrize("claim", STRING_CLAIMS)
def test_empty_or_missing_string_claims(claim: str) -> None:
    assert _reason(_signed(**{claim: ""})) == f"claim_{claim}"
    assert _reason(_signed((claim,))) == f"claim_{claim}"


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", [True, "1800000000", None, [1]])
def test_times_of_the_wrong_type(claim: str, value: object) -> None:
    if claim == "nbf" and value is None:
        assert _verify(_signed(nbf=None)).not_before is None  # nbf is optional
        return
    assert _reason(_signed(**{claim: value})) == f"claim_{claim}"


def test_fractional_times_are_numeric_dates() -> None:
    """RFC 7519 §2: a NumericDate may be non-integer; it is read in whole seconds."""
    claims = _verify(_signed(iat=NOW + 0.5, nbf=NOW + 0.5, exp=NOW + 600.5))
    assert (claims.issued_at, claims.not_before, claims.expires_at) == (NOW, NOW, NOW + 600)


def test_other_claims_of_the_wrong_type() -> None:
    assert _reason(_signed(scope=["documents"])) == "claim_scope"
    assert _reason(_signed(ensu_env="staging")) == "claim_ensu_env"
    assert _reason(_signed(cnf={"x5t#S256": "A" * 42})) == "claim_cnf"
    assert _reason(_signed(cnf={"x5t#S256": 7})) == "claim_cnf"
    assert _reason(_signed(cnf=["A" * 43])) == "claim_cnf"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": ISSUER + "/"}, "wrong_iss"),
        ({"aud": AUDIENCE + "/"}, "wrong_aud"),
        ({"sub": "client-2"}, "sub_not_client"),
    ],
)
def test_foreign_claims(claims: dict[str, object], reason: str) -> None:
    assert _reason(_signed(**claims)) == reason


def test_validity_window_boundaries() -> None:
    """Valid from ``max(iat, nbf) - leeway`` to before ``exp + leeway`` (30 s each)."""
    token = _issue().token
    assert _verify(token, now=NOW + 600 + 29).jwt_id
    assert _reason(token, now=NOW + 600 + 30) == "expired"
    assert _verify(token, now=NOW - 30).jwt_id
    assert _reason(token, now=NOW - 31) == "not_yet_valid"
    later = _signed(nbf=NOW + 100)  # nbf after iat: nbf decides
    assert _verify(later, now=NOW + 70).not_before == NOW + 100
    assert _reason(later, now=NOW + 69) == "not_yet_valid"
    without = _signed(("nbf",))  # nbf is optional (RFC 9068 §2.2)
    assert _verify(without, now=NOW - 30).not_before is None
    assert _reason(without, now=NOW - 31) == "not_yet_valid"


@pytest.mark.parametrize(
    ("lifetime", "accepted"), [(-1, False), (0, False), (1, True), (3600, True), (3601, False)]
)
def test_lifetime_bounds(lifetime: int, accepted: bool) -> None:
    """Never longer than the longest we issue (3600 s), never empty."""
    token = _signed(exp=NOW + lifetime)
    if accepted:
        assert _verify(token, now=NOW).expires_at == NOW + lifetime
    else:
        assert _reason(token, now=NOW) == "lifetime"
