"""The quota through the gateway (R-Q-1): ``RateLimit-*`` on every counted response, 429
900804 with ``Retry-After`` beyond the quota, 503 930003 when the counters fail.

The counter's clock is pinned (:class:`PinnedClock`) so that no test straddles a minute.
"""

from __future__ import annotations

import pytest

from ensu.consumers import quota as quotas
from ensu.gateway.quota.counter import WINDOW_SECONDS, QuotaCounter, QuotaDecision
from tests.unit.gateway.conftest import SIREN, World
from tests.unit.gateway.test_quota import BrokenCounter

pytestmark = pytest.mark.anyio
LIST = "/ensudocuments/v1/documents"
PINNED = 29_000_000 * WINDOW_SECONDS + 45.5  # 14.5 s before the window ends


class PinnedClock:
    """The app's counter, hit at one fixed instant whatever the wall clock says."""

    def __init__(self, counter: QuotaCounter) -> None:
        self.counter = counter

    async def hit(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return await self.counter.hit(key=key, limit=limit, now=PINNED)

    async def aclose(self) -> None:
        await self.counter.aclose()


async def test_ratelimit_headers_then_429(world: World) -> None:
    """R-Q-1: with a quota of 2, two calls pass with ``RateLimit-*`` (2, 1 then 0 left,
    15 s to the reset); the third is 429 900804 with ``Retry-After: 15`` and the same
    headers."""
    async with world.sessionmaker() as session, session.begin():
        await quotas.decide_quota(
            session=session, id_teleservice="TS-C", per_minute=2, decided_by="test", actor="t"
        )
    authority = world.app.state.authority
    authority.quota_counter = PinnedClock(authority.quota_counter)
    seen = []
    for _ in range(3):
        response = await world.get(LIST, "C", params={"siren": SIREN})
        seen.append(
            (
                response.status_code,
                response.headers["ratelimit-limit"],
                response.headers["ratelimit-remaining"],
                response.headers["ratelimit-reset"],
            )
        )
    assert seen == [(200, "2", "1", "15"), (200, "2", "0", "15"), (429, "2", "0", "15")]
    assert response.json()["code"] == "900804"
    assert response.headers["retry-after"] == "15"
    other = await world.get(LIST, "A", params={"siren": SIREN})  # its own count
    assert other.status_code == 200


async def test_refusals_before_the_quota_are_not_counted(world: World) -> None:
    """A call refused by an identity check never reaches the counter: no headers."""
    response = await world.get(LIST, "A", params={"siren": SIREN}, headers={"ID_Teleservice": "x"})
    assert response.status_code == 403
    assert "ratelimit-limit" not in response.headers


async def test_counter_failure_is_503(world: World) -> None:
    """Fail closed: no count, no data; 503 930003 with ``Retry-After``."""
    world.app.state.authority.quota_counter = BrokenCounter()
    response = await world.get(LIST, "A", params={"siren": SIREN})
    assert (response.status_code, response.json()["code"]) == (503, "930003")
    assert "retry-after" in response.headers
