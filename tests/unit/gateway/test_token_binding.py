"""R-GW-4 at the gateway: genuinely signed tokens that must still be refused, because
their binding, audience, issuer or environment is not this call's (RFC 8705 §3, RFC 9068).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from ensu.config import Environment
from ensu.oauth import keys, tokens
from tests.support.certs import make_certificate
from tests.unit.gateway.conftest import SIREN, World

pytestmark = pytest.mark.anyio
LIST = "/ensudocuments/v1/documents"


async def _signed(world: World, **overrides: object) -> str:
    consumer = world.consumers["A"]
    async with world.sessionmaker() as session, session.begin():
        key = await keys.current(
            session=session, secret_key=world.settings.secret_key, now=dt.datetime.now(dt.UTC)
        )
    fields: dict[str, object] = {
        "key": key,
        "issuer": world.settings.issuer,
        "audience": world.settings.audience,
        "client_id": consumer.client_id,
        "id_teleservice": consumer.id_teleservice,
        "environment": Environment.SANDBOX,
        "thumbprint": consumer.certificate.thumbprint,
        "scopes": frozenset(),
        "now": time.time(),
        "ttl_seconds": 300,
    }
    fields.update(overrides)
    return tokens.issue(**fields).token  # type: ignore[arg-type]


async def _call(world: World, token: str) -> tuple[int, str | None]:
    response = await world.get(
        LIST, "A", params={"siren": SIREN}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json().get("code")


async def test_the_genuine_token_passes(world: World) -> None:
    assert (await _call(world, await _signed(world)))[0] == 200


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"thumbprint": make_certificate("foreign").thumbprint}, (401, "900901")),
        ({"audience": "https://elsewhere.example/ensudocuments/v1"}, (401, "900901")),
        ({"issuer": "https://elsewhere.example"}, (401, "900901")),
        ({"environment": Environment.PRODUCTION}, (403, "910004")),  # CONTRACT.md's table
        ({"now": time.time() - 4000}, (401, "900901")),
        ({"client_id": "client-b", "id_teleservice": "TS-B"}, (403, "910003")),
    ],
    ids=["foreign-cnf", "audience", "issuer", "environment", "expired", "other-client"],
)
async def test_signed_but_not_for_this_call(
    world: World, override: dict[str, object], expected: tuple[int, str]
) -> None:
    assert await _call(world, await _signed(world, **override)) == expected
