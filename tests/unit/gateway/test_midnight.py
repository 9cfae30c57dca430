"""One clock, one time zone: "valid today" is the date in Paris for the token endpoint
and the gateway alike (R-GW-5, ensu.clock), tested at midnight, winter and summer.

A téléservice valid until day D may have a token and call until 23:59:59 in Paris on D;
from 00:00 in Paris on D+1 both refuse it, although the UTC date is still D for another
hour (winter) or two (summer).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from ensu import clock
from ensu.clock import PARIS
from ensu.config import Environment
from ensu.consumers import service as consumers
from tests.support.certs import SIRET, make_certificate
from tests.unit.gateway.conftest import SIREN, World, cert_header

pytestmark = pytest.mark.anyio
LIST = "/ensudocuments/v1/documents"


def _last_day(offset_hours: int) -> dt.date:
    """A day D, soon, whose following Paris midnight is ``offset_hours`` ahead of UTC
    (1: winter time, 2: summer time), inside the throwaway certificates' year."""
    day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    while True:
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), PARIS)
        offset = midnight.utcoffset()
        if offset == dt.timedelta(hours=offset_hours):
            return day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("offset_hours", [1, 2], ids=["winter", "summer"])
async def test_valid_until_ends_at_midnight_in_paris(world: World, offset_hours: int) -> None:
    last_day = _last_day(offset_hours)
    paris_midnight = dt.datetime.combine(
        last_day + dt.timedelta(days=1), dt.time(), PARIS
    ).astimezone(dt.UTC)
    certificate = make_certificate("midnight")
    async with world.sessionmaker() as session, session.begin():
        await consumers.create_teleservice(
            session=session,
            organisation_siret=SIRET,
            name="Téléservice de minuit",
            environment=Environment.SANDBOX,
            certificates=[certificate.ref],
            families=["declaratives"],
            period_start=dt.date(2020, 1, 1),
            period_end=dt.date(2030, 12, 31),
            networks=["127.0.0.0/8"],
            valid_from=dt.date(2020, 1, 1),
            valid_until=last_day,
            client_id="client-midnight",
            id_teleservice="TS-MIDNIGHT",
            actor="test",
        )
    # A token that outlives midnight, so that the gateway's own date decides.
    world.app.state.settings = world.settings.model_copy(update={"token_ttl_seconds": 3600})

    async def token_at(at: dt.datetime) -> tuple[int, str | None]:
        with clock.frozen(at):
            response = await world.http.post(
                "/token",
                data={"grant_type": "client_credentials", "client_id": "client-midnight"},
                headers=cert_header(certificate),
            )
        body = response.json()
        return response.status_code, body.get("access_token") or body.get("error")

    async def call_at(at: dt.datetime, token: str) -> tuple[int, str | None]:
        with clock.frozen(at):
            response = await world.http.get(
                LIST,
                params={"siren": SIREN},
                headers={
                    **cert_header(certificate),
                    "Authorization": f"Bearer {token}",
                    "ID_Teleservice": "TS-MIDNIGHT",
                    "X-Correlation-ID": str(uuid.uuid4()),
                },
            )
        return response.status_code, response.json().get("code")

    before = paris_midnight - dt.timedelta(seconds=1)  # 23:59:59 in Paris on D
    status, token = await token_at(before - dt.timedelta(seconds=30))
    assert status == 200
    assert token is not None
    assert await call_at(before, token) == (200, None)
    # 00:00:00 in Paris on D+1: the token endpoint and the gateway refuse together.
    assert await token_at(paris_midnight) == (400, "unauthorized_client")
    assert await call_at(paris_midnight, token) == (403, "910004")
    # Later that hour the UTC date is still D (23:59 UTC in winter), the legal date is not.
    late = paris_midnight + dt.timedelta(minutes=59)
    assert late.date() == last_day
    assert await call_at(late, token) == (403, "910004")
