"""The access chain, check by check and in the terms' order (R-GW-1 to R-GW-6)."""

from __future__ import annotations

import asyncio
import email.utils
import uuid
from urllib.parse import quote

import httpx
import pytest

from ensu.config import TLSMode
from ensu.consumers import service as consumers
from ensu.gateway.cache import RefreshingCache
from tests.support.certs import make_certificate
from tests.unit.gateway.conftest import PEER, SIREN, World, cert_header

pytestmark = pytest.mark.anyio
LIST = "/ensudocuments/v1/documents"
PARAMS = {"siren": SIREN}


def code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    value: str = response.json()["code"]
    return value


async def test_happy_path_echoes_the_correlation_id(world: World) -> None:
    response = await world.get(
        LIST,
        "A",
        params=PARAMS,
        headers={"X-Correlation-ID": "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11"},
    )
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11"


async def test_certificate_absent_or_unregistered(world: World) -> None:
    stranger = make_certificate("stranger")
    no_cert = await world.get(LIST, "A", params=PARAMS, headers={"X-SSL-Client-Cert": ""})
    assert (no_cert.status_code, code(no_cert)) == (401, "910001")
    unknown = await world.get(LIST, "A", params=PARAMS, headers=cert_header(stranger))
    assert (unknown.status_code, code(unknown)) == (401, "910001")
    garbage = await world.get(LIST, "A", params=PARAMS, headers={"X-SSL-Client-Cert": "x%20y"})
    assert code(garbage) == "910001"


async def test_ip_outside_the_allowlist(world: World) -> None:
    # C allows 127.0.0.1/32 only; the address is what the trusted proxy forwards.
    inside = await world.get(LIST, "C", params=PARAMS)
    assert inside.status_code == 200
    outside = await world.get(
        LIST, "C", params=PARAMS, headers=cert_header(world.consumers["C"].certificate, "127.0.0.2")
    )
    assert (outside.status_code, code(outside)) == (403, "910002")
    listed = await world.get(
        LIST,
        "C",
        params=PARAMS,
        headers={"X-Forwarded-For": "127.0.0.1, 127.0.0.2"},
    )
    assert code(listed) == "910002"  # one address expected from the proxy, never a list


async def test_teleservice_missing_or_not_bound(world: World) -> None:
    missing = await world.get(LIST, "A", params=PARAMS, headers={"ID_Teleservice": ""})
    assert code(missing) == "910003"
    other = await world.get(LIST, "A", params=PARAMS, headers={"ID_Teleservice": "TS-B"})
    assert (other.status_code, code(other)) == (403, "910003")


async def test_token_absent_malformed_or_in_the_query(world: World) -> None:
    absent = await world.get(LIST, "A", params=PARAMS, headers={"Authorization": ""})
    assert absent.status_code == 401
    basic = await world.get(LIST, "A", params=PARAMS, headers={"Authorization": "Basic eDp5"})
    assert (basic.status_code, code(basic)) == (401, "900902")
    garbage = await world.get(LIST, "A", params=PARAMS, headers={"Authorization": "Bearer x.y.z"})
    assert (garbage.status_code, code(garbage)) == (401, "900901")
    assert garbage.headers["www-authenticate"].startswith("Bearer")
    token = await world.token("A")
    consumer = world.consumers["A"]
    in_query = await world.http.get(
        LIST,
        params={**PARAMS, "access_token": token},
        headers={
            **cert_header(consumer.certificate),
            "ID_Teleservice": consumer.id_teleservice,
            "X-Correlation-ID": "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11",
        },
    )
    assert (in_query.status_code, code(in_query)) == (401, "900902")


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Bearer a b", "Token abc", "Basic eDp5", "abc"]
)
async def test_an_authorization_that_is_not_bearer_token_is_no_bearer_token(
    world: World, authorization: str
) -> None:
    """CONTRACT.md: anything but ``Bearer <token>`` is "no bearer token", 401 900902."""
    response = await world.get(LIST, "A", params=PARAMS, headers={"Authorization": authorization})
    assert (response.status_code, code(response)) == (401, "900902")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_scheme_is_case_insensitive(world: World) -> None:
    token = await world.token("A")
    response = await world.get(
        LIST, "A", params=PARAMS, headers={"Authorization": f"bEARER {token}"}
    )
    assert response.status_code == 200


async def test_token_of_client_one_with_the_certificate_of_client_two(world: World) -> None:
    """FAPI: a token presented with another client's certificate is refused (RFC 8705 §3)."""
    token_a = await world.token("A")
    response = await world.get(
        LIST, "B", params=PARAMS, headers={"Authorization": f"Bearer {token_a}"}
    )
    assert (response.status_code, code(response)) == (401, "900901")


async def test_token_of_another_teleservice_of_the_same_certificate(world: World) -> None:
    token_b = await world.token("B")
    response = await world.get(
        LIST, "A", params=PARAMS, headers={"Authorization": f"Bearer {token_b}"}
    )
    assert response.status_code in {401, 403}
    assert code(response) in {"900901", "910003"}


async def test_revoked_token_is_refused_on_the_next_call(world: World) -> None:
    token = await world.token("A")
    assert (await world.get(LIST, "A", params=PARAMS)).status_code == 200
    consumer = world.consumers["A"]
    revoked = await world.http.post(
        "/revoke",
        data={"token": token, "client_id": consumer.client_id},
        headers=cert_header(consumer.certificate),
    )
    assert revoked.status_code == 200
    response = await world.get(LIST, "A", params=PARAMS)
    assert (response.status_code, code(response)) == (401, "900901")


async def test_suspended_habilitation(world: World) -> None:
    await world.token("A")
    async with world.sessionmaker() as session, session.begin():
        await consumers.suspend(session=session, id_teleservice="TS-A", actor="test", reason="test")
    world.app.state.authority.forget()  # what the one-second cache would do by itself
    response = await world.get(LIST, "A", params=PARAMS)
    assert (response.status_code, code(response)) == (403, "910004")


async def test_an_isolated_teleservice_is_inactive_not_a_bad_token(world: World) -> None:
    """R-OPS-2: an incident suspends the téléservice and revokes its tokens; its calls
    answer 403 910004 (habilitation inactive), not 401 (a bad token)."""
    token = await world.token("A")
    consumer = world.consumers["A"]
    revoked = await world.http.post(
        "/revoke",
        data={"token": token, "client_id": consumer.client_id},
        headers=cert_header(consumer.certificate),
    )
    assert revoked.status_code == 200
    async with world.sessionmaker() as session, session.begin():
        await consumers.suspend(session=session, id_teleservice="TS-A", actor="test", reason="test")
    world.app.state.authority.forget()
    response = await world.get(LIST, "A", params=PARAMS)
    assert (response.status_code, code(response)) == (403, "910004")


async def test_correlation_id_checked_after_identity(world: World) -> None:
    bad = await world.get(LIST, "A", params=PARAMS, headers={"X-Correlation-ID": "not-a-uuid"})
    assert (bad.status_code, code(bad)) == (400, "910000")
    fresh = bad.headers["x-correlation-id"]  # R-GW-6: a fresh UUID, not the invalid one
    assert str(uuid.UUID(fresh)) == fresh
    assert bad.json()["correlationId"] == fresh
    both = await world.get(
        LIST, "A", params=PARAMS, headers={"X-Correlation-ID": "nope", "ID_Teleservice": "TS-X"}
    )
    assert code(both) == "910003"  # the identity failure answers first


async def test_parameters_checked_after_identity(world: World) -> None:
    bad = await world.get(LIST, "A", params={"siren": "123456789", "nope": "1"})
    assert (bad.status_code, code(bad)) == (400, "920400")
    names = {e["parametre"] for e in bad.json()["erreurs"]}
    assert names == {"nope"}  # unknown parameters are refused first, alone
    luhn = await world.get(LIST, "A", params={"siren": "123456789"})
    assert [e["parametre"] for e in luhn.json()["erreurs"]] == ["siren"]
    both = await world.get(LIST, "A", params={"siren": SIREN, "idsp": "ABCDEF"})
    assert code(both) == "920400"
    order = await world.get(
        LIST, "A", params={**PARAMS, "dateDebut": "2024-01-01", "dateFin": "2023-01-01"}
    )
    assert code(order) == "920400"
    anonymous = await world.http.get(LIST, params={"siren": "1"})
    assert code(anonymous) == "910001"


async def test_forged_headers_from_an_untrusted_peer_are_ignored(world: World) -> None:
    """R-GW-1, R-GW-2: only a trusted proxy's certificate and address headers count."""
    transport = httpx.ASGITransport(app=world.app, client=("10.9.8.7", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        response = await http.get(
            LIST,
            params=PARAMS,
            headers={
                **cert_header(world.consumers["A"].certificate),
                "Authorization": f"Bearer {await world.token('A')}",
                "ID_Teleservice": "TS-A",
            },
        )
    assert code(response) == "910001"


async def test_direct_mode_never_reads_the_certificate_header(world: World) -> None:
    await world.token("A")
    world.app.state.settings = world.settings.model_copy(update={"tls_mode": TLSMode.DIRECT})
    response = await world.get(LIST, "A", params=PARAMS)
    assert code(response) == "910001"


async def test_direct_mode_reads_the_tls_extension(world: World) -> None:
    token = await world.token("A")
    world.app.state.settings = world.settings.model_copy(update={"tls_mode": TLSMode.DIRECT})
    pem = world.consumers["A"].certificate.pem
    inner = world.app

    async def with_tls(scope, receive, send):  # type: ignore[no-untyped-def]
        scope = {**scope, "extensions": {"tls": {"client_cert_chain": [pem]}}}
        await inner(scope, receive, send)

    transport = httpx.ASGITransport(app=with_tls, client=PEER)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        response = await http.get(
            LIST,
            params=PARAMS,
            headers={
                "Authorization": f"Bearer {token}",
                "ID_Teleservice": "TS-A",
                "X-Correlation-ID": "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11",
                # forged: ignored in direct mode
                "X-SSL-Client-Cert": quote(world.consumers["B"].certificate.pem),
            },
        )
    assert response.status_code == 200, response.text


async def test_cache_bounds_staleness_refreshes_ahead_and_loads_once() -> None:
    """Issue 5: an entry is never served older than ttl; past half of it, one caller
    starts a background reload while being served; concurrent misses share one load."""
    now = [100.0]
    loads: list[str] = []
    release = asyncio.Event()

    async def load(key: str) -> int:
        loads.append(key)
        await release.wait()
        return len(loads)

    cache: RefreshingCache[str, int] = RefreshingCache(load, ttl=1.0, clock=lambda: now[0])
    release.set()
    assert await cache.get("k") == 1
    now[0] += 0.4
    assert await cache.get("k") == 1  # fresh: no reload
    assert loads == ["k"]
    now[0] += 0.2  # past refresh_after: served, and one reload starts
    release.clear()
    assert await cache.get("k") == 1
    assert await cache.get("k") == 1
    await asyncio.sleep(0)  # the reload task runs
    assert loads == ["k", "k"]  # one reload in flight, not two
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await cache.get("k") == 2
    now[0] += 1.5  # expired: callers wait, and share one load
    release.clear()
    waiting = [asyncio.create_task(cache.get("k")) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [3] * 5
    assert len(loads) == 3
    cache.clear()
    assert await cache.get("k") == 4


async def test_etat_sante_needs_no_token(world: World) -> None:
    response = await world.http.get("/ensudocuments/v1/etatSante")
    assert response.status_code == 200
    assert response.json()["statut"] == "ok"


async def test_environment_mismatch(world: World) -> None:
    await world.token("A")
    world.app.state.settings = world.settings.model_copy(
        update={"environment": "production", "secret_key": "x" * 40}
    )
    world.app.state.authority.forget()
    response = await world.get(LIST, "A", params=PARAMS)
    assert response.status_code in {401, 403}  # the token and the habilitation are sandbox


@pytest.mark.parametrize(
    "value",
    [
        "{5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11}",
        " 5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11",
        "5d0e0f6e4f6b4a399b0c6d6a3f4f2b11",
        "urn:uuid:5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11",
    ],
)
async def test_correlation_id_is_the_canonical_uuid_form(world: World, value: str) -> None:
    response = await world.get(LIST, "A", params=PARAMS, headers={"X-Correlation-ID": value})
    assert code(response) == "910000"


async def test_week_dates_are_not_dates(world: World) -> None:
    response = await world.get(LIST, "A", params={**PARAMS, "dateDebut": "2023-W01-1"})
    assert code(response) == "920400"


def _stamped(response: httpx.Response, sent: str | None = None) -> None:
    """CONTRACT.md: X-Correlation-ID (the one sent if valid, else a fresh UUID), Date and
    the RateLimit-* fields on every answer under the prefix, exactly once each."""
    headers = response.headers
    for name in ("x-correlation-id", "date", *RATELIMIT):
        assert len(headers.get_list(name)) == 1, (name, response.status_code)
    echoed = headers["x-correlation-id"]
    assert echoed == (sent or str(uuid.UUID(echoed)))
    assert email.utils.parsedate_to_datetime(headers["date"]).tzinfo is not None
    assert all(headers[name].isdigit() for name in RATELIMIT)


RATELIMIT = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
SENT = "5d0e0f6e-4f6b-4a39-9b0c-6d6a3f4f2b11"


async def test_every_answer_under_the_prefix_carries_the_contract_headers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-GW-6, R-Q-1: refusals at every step, before the quota check included, the open
    health route, an unknown path, a method not served, an integrity stop."""
    consumer = world.consumers["A"]
    cases = {
        "allowed": ({}, 200),
        "no certificate": ({"X-SSL-Client-Cert": ""}, 401),
        "outside the allowlist": (cert_header(consumer.certificate, "10.1.1.1"), 403),
        "unknown ID_Teleservice": ({"ID_Teleservice": "TS-X"}, 403),
        "not a bearer token": ({"Authorization": "Basic eDp5"}, 401),
        "bad correlation id": ({"X-Correlation-ID": "not-a-uuid"}, 400),
    }
    for label, (headers, status) in cases.items():
        sent = {"X-Correlation-ID": SENT, **headers}
        response = await world.get(LIST, "A", params=PARAMS, headers=sent)
        assert response.status_code == status, label
        _stamped(response, None if label == "bad correlation id" else SENT)
    health = await world.http.get("/ensudocuments/v1/etatSante")
    _stamped(health)
    unknown = await world.get(
        "/ensudocuments/v1/nulle-part", "A", headers={"X-Correlation-ID": SENT}
    )
    assert (unknown.status_code, code(unknown)) == (404, "920404")
    _stamped(unknown, SENT)
    monkeypatch.setattr(world.app.state.journal.monitor, "stopped", True)
    stopped = await world.get(LIST, "A", params=PARAMS)
    assert (stopped.status_code, code(stopped)) == (503, "930002")
    _stamped(stopped)


async def test_unknown_paths_and_methods_answer_problem_documents(world: World) -> None:
    """RFC 9457 under the prefix: an unknown path is 404 920404, a method the path does
    not serve 405 920405 with ``Allow``, both with the contract's members."""
    unknown = await world.get("/ensudocuments/v1/documents/IDENSUA/x/y/z", "A")
    assert (unknown.status_code, code(unknown)) == (404, "920404")
    consumer = world.consumers["A"]
    post = await world.http.post(
        LIST,
        headers={
            **cert_header(consumer.certificate),
            "Authorization": f"Bearer {await world.token('A')}",
            "ID_Teleservice": consumer.id_teleservice,
            "X-Correlation-ID": SENT,
        },
    )
    assert (post.status_code, code(post)) == (405, "920405")
    assert post.headers["allow"] == "GET"
    body = post.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "correlationId"}
    assert body["correlationId"] == SENT
    health = await world.http.delete("/ensudocuments/v1/etatSante")
    assert (health.status_code, code(health)) == (405, "920405")
    _stamped(health)
    elsewhere = await world.http.get("/nulle-part")  # outside the prefix: FastAPI's own
    assert elsewhere.status_code == 404
    assert elsewhere.headers["content-type"] == "application/json"
    assert "date" in elsewhere.headers
