"""Property: ``verify`` accepts every genuine token and no mutant of one (R-GW-4).

RFC 8725 (JWT BCP) §2 lists the attacks: ``alg: none``, HS256 keyed with the public key
("algorithm confusion"), substituted keys, missing or wrong ``typ`` (token type
confusion, RFC 9068 §4), missing claims, foreign issuer or audience, replay outside the
validity window. Each strategy below makes one kind of mutant from a genuine token and
checks that ``verify`` refuses it *for that reason*: a mutant refused for an unrelated
reason would hide a hole. 15,000 examples in all, about 35 s on two cores.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from ensu.config import Environment
from ensu.oauth import tokens
from ensu.oauth.keys import ActiveKey, VerificationKey

ISSUER = "https://ensu.example"
AUDIENCE = "https://ensu.example/ensudocuments/v1"
LEEWAY = 30
_OURS = ECKey.generate_key("P-256")
KEY = ActiveKey(kid=_OURS.thumbprint(), key=_OURS)
KEYS = {
    KEY.kid: VerificationKey(kid=KEY.kid, key=ECKey.import_key(_OURS.as_dict()), not_after=None)
}
ATTACKER = ECKey.generate_key("P-256")
REQUIRED = (
    *("iss", "aud", "sub", "client_id", "iat", "exp", "jti", "cnf"),
    *("ensu_env", "id_teleservice"),
)
#: Under mutation testing (mutmut sets ``MUTANT_UNDER_TEST``) every surviving mutant
#: reruns the whole suite: a few examples each there, the exact cases being in
#: ``test_tokens.py``; the full volume in ``make test``.
EXAMPLES = 20 if "MUTANT_UNDER_TEST" in os.environ else 1000

identifiers = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
    min_size=3,
    max_size=64,
)
thumbprints = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=43,
    max_size=43,
)


@st.composite
def genuine(draw: st.DrawFn) -> tuple[tokens.IssuedToken, int]:
    """A token as the server issues it, and a moment inside its validity window."""
    issued_at = draw(st.integers(1_600_000_000, 2_000_000_000))
    ttl = draw(st.integers(60, 3600))
    issued = tokens.issue(
        key=KEY,
        issuer=ISSUER,
        audience=AUDIENCE,
        client_id=draw(identifiers),
        id_teleservice=draw(identifiers),
        environment=draw(st.sampled_from(Environment)),
        thumbprint=draw(thumbprints),
        scopes=draw(st.frozensets(st.just("documents"))),
        now=issued_at,
        ttl_seconds=ttl,
    )
    now = draw(st.integers(issued_at - LEEWAY, issued_at + ttl + LEEWAY - 1))
    return issued, now


def _pool(size: int) -> list[tokens.IssuedToken]:
    """Genuine tokens made once (seeded), so that the mutant strategies spend their time
    mutating and verifying rather than issuing."""
    rng = random.Random(9068)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    def word(length: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(length))

    return [
        tokens.issue(
            key=KEY,
            issuer=ISSUER,
            audience=AUDIENCE,
            client_id=word(rng.randint(3, 64)),
            id_teleservice=word(rng.randint(3, 64)),
            environment=rng.choice(list(Environment)),
            thumbprint=word(43),
            scopes=rng.choice([frozenset(), frozenset({"documents"})]),
            now=rng.randint(1_600_000_000, 2_000_000_000),
            ttl_seconds=rng.randint(60, 3600),
        )
        for _ in range(size)
    ]


POOL = _pool(64)


@st.composite
def pooled(draw: st.DrawFn) -> tuple[tokens.IssuedToken, int]:
    """A genuine token from the pool, and a moment inside its validity window."""
    issued = draw(st.sampled_from(POOL))
    claims = issued.claims
    now = draw(st.integers(claims.issued_at - LEEWAY, claims.expires_at + LEEWAY - 1))
    return issued, now


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), _unb64(signature)


def _sign(header: dict[str, Any], payload: dict[str, Any], key: ECKey = _OURS) -> str:
    """A correctly ES256-signed token with *any* header and payload, made by hand so that
    no library second-guesses the mutation."""
    head, body = _b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode())
    private = key.private_key
    assert private is not None
    der = private.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{head}.{body}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _refused(token: str, now: int, *reasons: str) -> None:
    with pytest.raises(tokens.TokenError) as caught:
        tokens.verify(token, keys=KEYS, issuer=ISSUER, audience=AUDIENCE, now=now, leeway=LEEWAY)
    assert caught.value.reason in reasons


@settings(max_examples=EXAMPLES + EXAMPLES // 2, deadline=None)
@given(genuine())
def test_every_genuine_token_is_accepted(case: tuple[tokens.IssuedToken, int]) -> None:
    issued, now = case
    claims = tokens.verify(
        issued.token, keys=KEYS, issuer=ISSUER, audience=AUDIENCE, now=now, leeway=LEEWAY
    )
    assert claims == issued.claims


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.sampled_from(["none", "None", "NONE", ""]), st.binary(max_size=64))
def test_alg_none_is_refused(
    case: tuple[tokens.IssuedToken, int], alg: str, signature: bytes
) -> None:
    issued, now = case
    header, _, _ = _parts(issued.token)
    head = _b64(json.dumps({**header, "alg": alg}).encode())
    body = issued.token.split(".")[1]
    _refused(f"{head}.{body}.{_b64(signature)}", now, "alg_not_allowed")


def _public_encodings() -> list[bytes]:
    public = _OURS.public_key
    return [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(_OURS.as_dict(private=False)).encode(),
        public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
    ]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    pooled(),
    st.sampled_from(["HS256", "HS384", "HS512"]),
    st.sampled_from(_public_encodings()),
)
def test_hmac_keyed_with_the_public_key_is_refused(
    case: tuple[tokens.IssuedToken, int], alg: str, secret: bytes
) -> None:
    """Algorithm confusion (RFC 8725 §2.1): an HMAC 'signed' with our public key."""
    issued, now = case
    header, _, _ = _parts(issued.token)
    head = _b64(json.dumps({**header, "alg": alg}).encode())
    body = issued.token.split(".")[1]
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    mac = hmac.new(secret, f"{head}.{body}".encode(), digest).digest()
    _refused(f"{head}.{body}.{_b64(mac)}", now, "alg_not_allowed")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.sampled_from(["ES384", "ES512", "RS256", "PS256", "EdDSA", "es256", "ES256K"]))
def test_other_algorithms_are_refused(case: tuple[tokens.IssuedToken, int], alg: str) -> None:
    issued, now = case
    header, _, signature = _parts(issued.token)
    head = _b64(json.dumps({**header, "alg": alg}).encode())
    _refused(f"{head}.{issued.token.split('.')[1]}.{_b64(signature)}", now, "alg_not_allowed")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.one_of(st.text(max_size=50), st.integers(), st.none()), st.booleans())
def test_unknown_kid_is_refused(
    case: tuple[tokens.IssuedToken, int], kid: object, attacker_signs: bool
) -> None:
    """A kid we never published, whoever signed (our key or an attacker's own)."""
    issued, now = case
    if kid == KEY.kid:
        kid = KEY.kid + "x"
    header, payload, _ = _parts(issued.token)
    token = _sign({**header, "kid": kid}, payload, ATTACKER if attacker_signs else _OURS)
    _refused(token, now, "unknown_kid")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled())
def test_attackers_key_under_our_kid_is_refused(case: tuple[tokens.IssuedToken, int]) -> None:
    issued, now = case
    header, payload, _ = _parts(issued.token)
    _refused(_sign(header, payload, ATTACKER), now, "bad_signature")


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    pooled(),
    st.one_of(
        st.none(),
        st.sampled_from(["JWT", "jwt", "at+JWT", "AT+JWT", "application/jwt", "", "dpop+jwt"]),
        st.text(max_size=20).filter(lambda value: value not in tokens.ACCEPTED_TYPES),
        st.integers(),
    ),
)
def test_missing_or_wrong_typ_is_refused(case: tuple[tokens.IssuedToken, int], typ: object) -> None:
    """RFC 9068 §4: an ID token or a plain JWT must not pass as an access token."""
    issued, now = case
    header, payload, _ = _parts(issued.token)
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    _refused(_sign(header, payload), now, "wrong_typ")


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(pooled(), st.sampled_from(["crit", "jku", "jwk", "x5u", "x5c", "cty", "b64"]))
def test_extra_header_parameters_are_refused(
    case: tuple[tokens.IssuedToken, int], name: str
) -> None:
    """Nothing in the header may point at another key or change how it is read."""
    issued, now = case
    header, payload, _ = _parts(issued.token)
    _refused(_sign({**header, name: "x"}, payload), now, "header_parameter_not_allowed")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.sampled_from(REQUIRED))
def test_each_required_claim_removed_is_refused(
    case: tuple[tokens.IssuedToken, int], claim: str
) -> None:
    issued, now = case
    header, payload, _ = _parts(issued.token)
    del payload[claim]
    _refused(_sign(header, payload), now, f"claim_{claim}")


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    pooled(),
    st.sampled_from((*REQUIRED, "nbf", "scope")),
    st.one_of(
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
    ),
)
def test_claims_of_the_wrong_type_are_refused(
    case: tuple[tokens.IssuedToken, int], claim: str, value: object
) -> None:
    issued, now = case
    header, payload, _ = _parts(issued.token)
    if claim == "nbf" and value is None:
        value = "soon"  # nbf is optional: absent or null is fine, a string is not
    payload[claim] = value
    _refused(_sign(header, payload), now, f"claim_{claim}")


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    pooled(),
    st.sampled_from(["iss", "aud"]),
    st.one_of(
        st.text(min_size=1, max_size=60),
        st.sampled_from([ISSUER + "/", AUDIENCE + "/", ISSUER.upper(), "https://evil.example"]),
    ),
    st.booleans(),
)
def test_foreign_issuer_or_audience_is_refused(
    case: tuple[tokens.IssuedToken, int], claim: str, value: str, as_list: bool
) -> None:
    """Exact match only (RFC 9068 §4); an audience array, even holding ours, is refused."""
    issued, now = case
    header, payload, _ = _parts(issued.token)
    expected = ISSUER if claim == "iss" else AUDIENCE
    if value == expected:
        value += "x"
    payload[claim] = [expected] if as_list and claim == "aud" else value
    _refused(_sign(header, payload), now, f"wrong_{claim}", f"claim_{claim}")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.integers(0, 10**9))
def test_expired_tokens_are_refused(case: tuple[tokens.IssuedToken, int], late: int) -> None:
    issued, _ = case
    now = issued.claims.expires_at + LEEWAY + late
    _refused(issued.token, now, "expired")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.integers(1, 10**6), st.sampled_from(["nbf", "iat"]))
def test_not_yet_valid_tokens_are_refused(
    case: tuple[tokens.IssuedToken, int], early: int, claim: str
) -> None:
    """Used before ``nbf``/``iat`` beyond the leeway (moved forward, still signed)."""
    issued, _ = case
    header, payload, _ = _parts(issued.token)
    start = payload[claim] + early
    payload[claim] = start
    if claim == "iat":
        payload["nbf"] = start
    payload["exp"] = max(payload["exp"], start + 60)
    now = start - LEEWAY - 1
    _refused(_sign(header, payload), now, "not_yet_valid")


@settings(max_examples=EXAMPLES, deadline=None)
@given(pooled(), st.integers(0, 64 * 8 - 1))
def test_one_flipped_signature_bit_is_refused(
    case: tuple[tokens.IssuedToken, int], bit: int
) -> None:
    issued, now = case
    head, body, signature = issued.token.split(".")
    raw = bytearray(_unb64(signature))
    raw[bit // 8] ^= 1 << (bit % 8)
    _refused(f"{head}.{body}.{_b64(bytes(raw))}", now, "bad_signature")


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(pooled(), st.data())
def test_one_flipped_payload_bit_is_refused(
    case: tuple[tokens.IssuedToken, int], data: st.DataObject
) -> None:
    issued, now = case
    head, body, signature = issued.token.split(".")
    raw = bytearray(_unb64(body))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    _refused(f"{head}.{_b64(bytes(raw))}.{signature}", now, "bad_signature")


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(
    pooled(),
    st.one_of(
        st.just({}),
        st.just({"x5t": "A" * 43}),
        st.builds(lambda t: {"x5t#S256": t}, st.text(max_size=50)),
        st.builds(lambda n: {"x5t#S256": n}, st.integers()),
        st.just("A" * 43),
    ),
)
def test_missing_or_malformed_cnf_is_refused(
    case: tuple[tokens.IssuedToken, int], cnf: object
) -> None:
    """RFC 8705 §3.1: an access token without a certificate binding is not ours."""
    issued, now = case
    header, payload, _ = _parts(issued.token)
    value = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{43}", value):
        cnf = {"x5t#S256": value + "!"}  # a well-formed thumbprint is not a mutant
    payload["cnf"] = cnf
    _refused(_sign(header, payload), now, "claim_cnf")
