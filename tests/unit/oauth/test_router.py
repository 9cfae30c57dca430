"""The authorization server through the ASGI app (R-GW-4, CONTRACT.md "OAuth 2.0"):
client credentials bound to the certificate (RFC 8705), RFC 6749 §5.2 errors,
discovery (RFC 8414), JWKS, introspection (RFC 7662), revocation (RFC 7009), throttling.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from ensu.app import create_app
from ensu.audit.models import Event
from ensu.audit.tags import EventTag
from ensu.config import Environment, Settings, TLSMode
from ensu.consumers import service as consumers
from ensu.consumers.models import AuthMethod
from ensu.oauth import keys, service, tokens
from ensu.oauth.throttle import Throttle
from tests.support.certs import SIRET, ThrowawayCertificate, create_client, make_certificate
from tests.support.journal import journaled_events
from tests.unit.oauth.conftest import Api

pytestmark = pytest.mark.anyio
INACTIVE = b'{"active":false}'


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _header(token: str) -> dict[str, Any]:
    head = token.split(".", maxsplit=1)[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


async def _access_token(api: Api, client_id: str, certificate: ThrowawayCertificate) -> str:
    response = await api.token(client_id, certificate)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _events(api: Api, tag: EventTag) -> list[Event]:
    async with api.sessionmaker() as session:
        return list(await session.scalars(select(Event).where(Event.tag == str(tag))))


# -- /token ----------------------------------------------------------------------------


async def test_token_is_bound_to_the_presented_certificate(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """R-GW-4: tls_client_auth (RFC 8705 §2.1) gives an at+jwt with cnf.x5t#S256."""
    response = await api.token("client-1", cert_one)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == api.settings.token_ttl_seconds
    assert body["scope"] == "documents"
    assert _header(body["access_token"])["typ"] == "at+jwt"
    claims = _claims(body["access_token"])
    assert claims["cnf"] == {"x5t#S256": cert_one.thumbprint}
    assert claims["client_id"] == claims["sub"] == "client-1"
    assert claims["id_teleservice"] == "TS-CLIENT-1"
    assert claims["ensu_env"] == "sandbox"
    assert claims["iss"] == api.settings.issuer
    assert claims["aud"] == api.settings.audience
    jwks = (await api.http.get("/jwks")).json()
    published = {key["kid"]: key for key in jwks["keys"]}
    assert _header(body["access_token"])["kid"] in published
    # Journaled straight through the group commit, durable before the answer (R-TR-1).
    issued = await journaled_events(api.settings, EventTag.OAUTH_TOKEN_ISSUED)
    assert [event.details["jti"] for event in issued] == [claims["jti"]]
    assert issued[0].details["kid"] == _header(body["access_token"])["kid"]
    assert issued[0].details["thumbprint"] == cert_one.thumbprint
    assert body["access_token"] not in json.dumps([event.details for event in issued])
    assert await _events(api, EventTag.OAUTH_TOKEN_ISSUED) == []  # no outbox row per token


async def test_client_id_of_another_client_with_my_certificate_is_invalid_client(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """RFC 8705 §2: the certificate must be one registered for *that* client_id."""
    response = await api.token("client-2", cert_one)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    refused = await _events(api, EventTag.OAUTH_CLIENT_AUTHENTICATION_FAILED)
    assert refused[-1].details["reason"] == "certificate_not_registered"
    assert refused[-1].details["thumbprint"] == cert_one.thumbprint


@pytest.mark.parametrize("client_id", ["client-1", "nobody"])
async def test_no_certificate_is_invalid_client(api: Api, client_id: str) -> None:
    response = await api.token(client_id, None)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" in response.headers


async def test_unknown_client_is_invalid_client(api: Api, cert_one: ThrowawayCertificate) -> None:
    response = await api.token("nobody", cert_one)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


async def test_certificate_header_from_an_untrusted_peer_is_ignored(
    proxy_settings: Settings, cert_one: ThrowawayCertificate
) -> None:
    """Only a trusted proxy may vouch for a certificate (R-GW-1)."""
    settings = proxy_settings.model_copy(update={"trusted_proxies": []})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            await create_client(session, cert_one, client_id="client-1")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
            api = Api(app=app, http=http, settings=settings, sessionmaker=app.state.sessionmaker)
            response = await api.token("client-1", cert_one)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"client_id": "client-1"}, "invalid_request"),
        ({"client_id": "client-1", "grant_type": "password"}, "unsupported_grant_type"),
        ({"client_id": "client-1", "grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": ""}, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_id": "client-1", "scope": "admin"},
            "invalid_scope",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "client-1",
                "scope": "documents openid",
            },
            "invalid_scope",
        ),
    ],
)
async def test_request_errors(
    api: Api, cert_one: ThrowawayCertificate, data: dict[str, str], error: str
) -> None:
    """RFC 6749 §5.2 error words, status 400, JSON, not cached."""
    response = await api.post("/token", data, cert_one)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"


async def test_repeated_parameter_is_invalid_request(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """RFC 6749 §3.2: parameters must not be included more than once."""
    body = "grant_type=client_credentials&client_id=client-1&client_id=client-2"
    response = await api.http.post(
        "/token",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-ssl-client-cert": cert_one.pem.replace("\n", "%0A"),
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_json_body_is_invalid_request(api: Api, cert_one: ThrowawayCertificate) -> None:
    response = await api.http.post(
        "/token", json={"grant_type": "client_credentials", "client_id": "client-1"}
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
async def test_an_oversized_body_is_413_invalid_request_and_journaled(
    api: Api, endpoint: str, declared: bool
) -> None:
    """R-GW-6, OWASP API4:2023: a form beyond 8 KiB is refused 413 in RFC 6749 §5.2 form,
    unread when its length is declared, at the bound when it is streamed; journaled."""
    body = b"grant_type=client_credentials&client_id=" + b"x" * 10_000
    response = await api.http.post(
        endpoint,
        content=body if declared else _chunks(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (response.status_code, response.json()["error"]) == (413, "invalid_request")
    assert response.headers["cache-control"] == "no-store"
    refused = await _events(api, EventTag.OAUTH_TOKEN_REFUSED)
    assert refused[-1].details["reason"] == "body_too_large"
    assert refused[-1].details["endpoint"] == endpoint.lstrip("/")


async def test_explicit_scope_is_echoed(api: Api, cert_one: ThrowawayCertificate) -> None:
    response = await api.token("client-1", cert_one, scope="documents")
    assert response.json()["scope"] == "documents"


@pytest.mark.parametrize("action", [consumers.suspend, consumers.revoke])
async def test_suspended_or_revoked_client_is_unauthorized_client(
    api: Api, cert_one: ThrowawayCertificate, action: Any
) -> None:
    """The holder of the certificate authenticated but may not have a token (R-GW-5)."""
    async with api.sessionmaker() as session, session.begin():
        await action(session=session, id_teleservice="TS-CLIENT-1", actor="test")
    response = await api.token("client-1", cert_one)
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_other_environment_is_unauthorized_client(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """A production deployment issues nothing to a sandbox téléservice (R-GW-5)."""
    api.app.state.settings = api.settings.model_copy(update={"environment": Environment.PRODUCTION})
    response = await api.token("client-1", cert_one)
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_client_secret_basic_needs_secret_and_certificate(api: Api) -> None:
    """client_secret_basic (RFC 6749 §2.3.1) *plus* the certificate (CONTRACT.md)."""
    certificate = make_certificate("client-secret")
    async with api.sessionmaker() as session, session.begin():
        created = await create_client(
            session, certificate, client_id="client-s", auth_method=AuthMethod.CLIENT_SECRET_BASIC
        )
    assert created.client_secret
    data = {"grant_type": "client_credentials", "client_id": "client-s"}
    good = await api.post("/token", data, certificate, auth=("client-s", created.client_secret))
    assert good.status_code == 200, good.text
    wrong = await api.post("/token", data, certificate, auth=("client-s", "wrong"))
    without_cert = await api.post("/token", data, None, auth=("client-s", created.client_secret))
    without_secret = await api.post("/token", data, certificate)
    for response in (wrong, without_cert, without_secret):
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_basic_credentials_for_a_tls_client_auth_client_are_refused(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """RFC 6749 §2.3: one authentication method per client, the registered one."""
    data = {"grant_type": "client_credentials", "client_id": "client-1"}
    response = await api.post("/token", data, cert_one, auth=("client-1", "anything"))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    mismatch = await api.post("/token", data, cert_one, auth=("client-2", "anything"))
    assert (mismatch.status_code, mismatch.json()["error"]) == (401, "invalid_client")


async def test_jti_of_issued_tokens_are_unique(api: Api, cert_one: ThrowawayCertificate) -> None:
    jtis = {_claims(await _access_token(api, "client-1", cert_one))["jti"] for _ in range(20)}
    assert len(jtis) == 20
    assert all(len(base64.urlsafe_b64decode(jti + "==")) >= 16 for jti in jtis)


# -- direct mode: the certificate in the ASGI tls extension ------------------------------


async def test_direct_mode_reads_the_tls_extension(
    settings: Settings, cert_one: ThrowawayCertificate
) -> None:
    """uvicorn puts the verified leaf in scope["extensions"]["tls"]; a wrapper plays it."""
    app = create_app(settings.model_copy(update={"tls_mode": TLSMode.DIRECT}))

    async def with_certificate(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            extensions = {
                **scope.get("extensions", {}),
                "tls": {"client_cert_chain": [cert_one.pem]},
            }
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            await create_client(session, cert_one, client_id="client-1")
        transport = httpx.ASGITransport(app=with_certificate, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
            data = {"grant_type": "client_credentials", "client_id": "client-1"}
            response = await http.post("/token", data=data)
    assert response.status_code == 200, response.text
    assert _claims(response.json()["access_token"])["cnf"]["x5t#S256"] == cert_one.thumbprint


# -- discovery and keys ----------------------------------------------------------------


async def test_discovery_metadata(api: Api) -> None:
    """RFC 8414 §2 with RFC 8705 §3.3's certificate-bound tokens."""
    response = await api.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    issuer = api.settings.issuer
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["jwks_uri"] == f"{issuer}/jwks"
    assert metadata["introspection_endpoint"] == f"{issuer}/introspect"
    assert metadata["revocation_endpoint"] == f"{issuer}/revoke"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["response_types_supported"] == []
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "tls_client_auth",
        "client_secret_basic",
    }
    assert metadata["tls_client_certificate_bound_access_tokens"] is True


async def test_jwks_publishes_public_keys_only(api: Api) -> None:
    response = await api.http.get("/jwks")
    assert response.status_code == 200
    document = response.json()
    assert len(document["keys"]) == 1
    key = document["keys"][0]
    assert key["kty"] == "EC"
    assert key["crv"] == "P-256"
    assert key["alg"] == "ES256"
    assert "d" not in key


# -- introspection ---------------------------------------------------------------------


async def _introspect(
    api: Api, token: str, client_id: str, cert: ThrowawayCertificate
) -> httpx.Response:
    return await api.post("/introspect", {"token": token, "client_id": client_id}, cert)


async def test_introspection_of_an_active_token(api: Api, cert_one: ThrowawayCertificate) -> None:
    """RFC 7662 §2.2 for the token's own client."""
    token = await _access_token(api, "client-1", cert_one)
    response = await _introspect(api, token, "client-1", cert_one)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == "client-1"
    assert body["cnf"] == {"x5t#S256": cert_one.thumbprint}
    assert body["jti"] == _claims(token)["jti"]


async def test_every_inactive_case_answers_the_same_bytes(
    api: Api, cert_one: ThrowawayCertificate, cert_two: ThrowawayCertificate
) -> None:
    """RFC 7662 §2.2: garbage, tampered, expired, revoked, another client's token and a
    suspended client all answer exactly {"active":false}: nothing tells them apart."""
    token = await _access_token(api, "client-1", cert_one)
    other = await _access_token(api, "client-2", cert_two)
    head, body, signature = token.split(".")
    tampered = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BA'}"
    async with api.sessionmaker() as session, session.begin():
        view = await consumers.get_by_client_id(session=session, client_id="client-1")
        assert view is not None
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
        key = await keys.current(session=session, secret_key=api.settings.secret_key, now=past)
        expired = service.issue_token(
            key=key,
            settings=api.settings,
            client=view,
            thumbprint=cert_one.thumbprint,
            scopes=service.SCOPES,
            now=past,
        )
    revoked = await _access_token(api, "client-1", cert_one)
    assert (
        await api.post("/revoke", {"token": revoked, "client_id": "client-1"}, cert_one)
    ).status_code == 200

    answers = [
        await _introspect(api, value, "client-1", cert_one)
        for value in ("garbage", "a.b.c", tampered, expired.token, revoked, other)
    ]
    async with api.sessionmaker() as session, session.begin():
        await consumers.suspend(session=session, id_teleservice="TS-CLIENT-1", actor="test")
    answers.append(await _introspect(api, token, "client-1", cert_one))

    for answer in answers:
        assert answer.status_code == 200
        assert answer.content == INACTIVE
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
    # The same token was active before the suspension: the suspension made it inactive.
    assert (await _introspect(api, other, "client-2", cert_two)).json()["active"] is True


async def test_introspection_requires_client_authentication(
    api: Api, cert_one: ThrowawayCertificate, cert_two: ThrowawayCertificate
) -> None:
    token = await _access_token(api, "client-1", cert_one)
    anonymous = await api.post("/introspect", {"token": token, "client_id": "client-1"}, None)
    wrong = await api.post("/introspect", {"token": token, "client_id": "client-1"}, cert_two)
    for response in (anonymous, wrong):
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    missing = await api.post("/introspect", {"client_id": "client-1"}, cert_one)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


# -- revocation ------------------------------------------------------------------------


async def test_revocation_then_introspection_is_inactive(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    """RFC 7009 §2: revoked tokens are refused from the next call (is_revoked)."""
    token = await _access_token(api, "client-1", cert_one)
    assert (await _introspect(api, token, "client-1", cert_one)).json()["active"] is True
    response = await api.post("/revoke", {"token": token, "client_id": "client-1"}, cert_one)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert (await _introspect(api, token, "client-1", cert_one)).content == INACTIVE
    async with api.sessionmaker() as session:
        assert await service.is_revoked(session=session, jti=_claims(token)["jti"])
    again = await api.post("/revoke", {"token": token, "client_id": "client-1"}, cert_one)
    assert again.status_code == 200  # idempotent
    assert len(await _events(api, EventTag.OAUTH_TOKEN_REVOKED)) == 2


async def test_only_the_owner_revokes(
    api: Api, cert_one: ThrowawayCertificate, cert_two: ThrowawayCertificate
) -> None:
    """Another client's revocation answers 200 and changes nothing (RFC 7009 §2.1)."""
    token = await _access_token(api, "client-1", cert_one)
    response = await api.post("/revoke", {"token": token, "client_id": "client-2"}, cert_two)
    assert response.status_code == 200
    assert (await _introspect(api, token, "client-1", cert_one)).json()["active"] is True
    async with api.sessionmaker() as session:
        assert not await service.is_revoked(session=session, jti=_claims(token)["jti"])


async def test_revocation_of_garbage_is_200_and_needs_authentication(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    ok = await api.post("/revoke", {"token": "garbage", "client_id": "client-1"}, cert_one)
    assert ok.status_code == 200
    anonymous = await api.post("/revoke", {"token": "garbage", "client_id": "client-1"}, None)
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
    missing = await api.post("/revoke", {"client_id": "client-1"}, cert_one)
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")


# -- throttling ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_endpoint_is_throttled(api: Api, cert_one: ThrowawayCertificate) -> None:
    """429 slow_down with Retry-After once the burst is spent; refills with time."""
    clock = FakeClock()
    api.app.state.oauth_throttle = Throttle(rate=1.0, burst=2.0, clock=clock)
    statuses = [(await api.token("client-1", cert_one)).status_code for _ in range(2)]
    assert statuses == [200, 200]
    throttled = await api.token("client-1", cert_one)
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "slow_down"
    assert throttled.headers["retry-after"] == "1"
    assert throttled.headers["cache-control"] == "no-store"
    clock.now += 1.0
    assert (await api.token("client-1", cert_one)).status_code == 200


async def test_throttling_is_per_client(
    api: Api, cert_one: ThrowawayCertificate, cert_two: ThrowawayCertificate
) -> None:
    clock = FakeClock()
    throttle = Throttle(rate=1.0, burst=1.0, clock=clock)
    throttle.per_ip = Throttle(rate=100.0, burst=100.0, clock=clock).per_ip
    api.app.state.oauth_throttle = throttle
    assert (await api.token("client-1", cert_one)).status_code == 200
    assert (await api.token("client-1", cert_one)).status_code == 429
    assert (await api.token("client-2", cert_two)).status_code == 200


async def test_key_made_on_first_token_is_published(
    api: Api, cert_one: ThrowawayCertificate
) -> None:
    token = await _access_token(api, "client-1", cert_one)
    async with api.sessionmaker() as session:
        published = await keys.verification_keys(session=session, now=dt.datetime.now(dt.UTC))
    claims = tokens.verify(
        token,
        keys=published,
        issuer=api.settings.issuer,
        audience=api.settings.audience,
        now=dt.datetime.now(dt.UTC).timestamp(),
    )
    assert claims.client_id == "client-1"


# -- the allowlist and the methods not supported, at the token endpoint ----------------


async def test_the_token_endpoint_checks_the_ip_allowlist(api: Api) -> None:
    """R-GW-2 as on the data routes: a client allowed only from 10.0.0.0/8 gets no token
    from 127.0.0.1 (invalid_client, journaled with its reason), and one from 10.1.2.3
    (the address the trusted proxy forwards)."""
    certificate = make_certificate("client-ten")
    async with api.sessionmaker() as session, session.begin():
        await consumers.ensure_organisation(session=session, siret=SIRET, name="Org", actor="t")
        await consumers.create_teleservice(
            session=session,
            organisation_siret=SIRET,
            name="Téléservice du réseau 10",
            environment=Environment.SANDBOX,
            certificates=[certificate.ref],
            families=["declaratives"],
            period_start=dt.date(2020, 1, 1),
            period_end=dt.date(2030, 12, 31),
            networks=["10.0.0.0/8"],
            valid_from=dt.date(2020, 1, 1),
            client_id="client-ten",
            actor="t",
        )
    data = {"grant_type": "client_credentials", "client_id": "client-ten"}
    pem = {"X-SSL-Client-Cert": quote(certificate.pem), "X-Forwarded-For": "127.0.0.1"}
    refused = await api.http.post("/token", data=data, headers=pem)
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    forwarded = {**pem, "X-Forwarded-For": "10.1.2.3"}
    inside = await api.http.post("/token", data=data, headers=forwarded)
    assert inside.status_code == 200, inside.text
    failures = await _events(api, EventTag.OAUTH_CLIENT_AUTHENTICATION_FAILED)
    assert [(e.details["reason"], e.details["ip"]) for e in failures] == [
        ("ip_outside_allowlist", "127.0.0.1")
    ]
    # Introspection and revocation authenticate their clients the same way.
    token = {"token": inside.json()["access_token"], "client_id": "client-ten"}
    for path in ("/introspect", "/revoke"):
        outside = await api.http.post(path, data=token, headers=pem)
        assert (outside.status_code, outside.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (
            {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
            },
            "client_assertion_unsupported",
        ),
        ({"client_secret": "anything"}, "client_secret_post_unsupported"),
    ],
    ids=["client_assertion", "client_secret_post"],
)
async def test_an_unsupported_client_authentication_is_refused_not_ignored(
    api: Api, cert_one: ThrowawayCertificate, extra: dict[str, str], reason: str
) -> None:
    """RFC 6749 §5.2: an authentication method the server does not support (RFC 7523's
    client assertion, client_secret_post) is invalid_client, even beside a certificate
    that would authenticate the client on its own."""
    response = await api.token("client-1", cert_one, **extra)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    failures = await _events(api, EventTag.OAUTH_CLIENT_AUTHENTICATION_FAILED)
    assert [e.details["reason"] for e in failures] == [reason]
    assert all(extra[name] not in str(e.details) for e in failures for name in extra)
