"""The quota through the gateway (R-Q-1): ``RateLimit-*`` on every counted response, 429
900804 with ``Retry-After`` beyond the quota, 503 930003 when the counters fail.

The counter's clock is pinned (:class:`PinnedClock`) so that no test straddles a minute.
"""

from __future__ import annotations

import httpx
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

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        return await self.counter.peek(key=key, limit=limit, now=PINNED)

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


def _fields(response: httpx.Response) -> tuple[str, str, str]:
    headers = response.headers
    return headers["ratelimit-limit"], headers["ratelimit-remaining"], headers["ratelimit-reset"]


async def test_refusals_before_the_quota_carry_its_state_uncounted(world: World) -> None:
    """CONTRACT.md: every answer carries ``RateLimit-*``, refusals before the quota check
    included, and none of them is counted. Téléservice not known (refused at
    ``ID_Teleservice``): the environment's default (50 in the sandbox), nothing counted.
    Téléservice known (refused at the token): its counter, peeked."""
    async with world.sessionmaker() as session, session.begin():
        await quotas.decide_quota(
            session=session, id_teleservice="TS-C", per_minute=5, decided_by="test", actor="t"
        )
    authority = world.app.state.authority
    authority.quota_counter = PinnedClock(authority.quota_counter)
    unknown = await world.get(LIST, "C", params={"siren": SIREN}, headers={"ID_Teleservice": "x"})
    assert unknown.status_code == 403
    limit, remaining, reset = _fields(unknown)
    assert (limit, remaining) == ("50", "50")
    assert 1 <= int(reset) <= WINDOW_SECONDS  # the app's clock: no counter was read
    first = await world.get(LIST, "C", params={"siren": SIREN})
    assert (first.status_code, _fields(first)) == (200, ("5", "4", "15"))
    bad_token = {"Authorization": "Bearer not-a-token"}
    for _ in range(3):  # peeked, never counted
        refused = await world.get(LIST, "C", params={"siren": SIREN}, headers=bad_token)
        assert (refused.status_code, _fields(refused)) == (401, ("5", "4", "15"))
    second = await world.get(LIST, "C", params={"siren": SIREN})
    assert (second.status_code, _fields(second)) == (200, ("5", "3", "15"))


async def test_a_counter_that_cannot_be_peeked_gives_an_empty_window(world: World) -> None:
    """The counter down: a refusal before the quota check still has its fields, those of
    a window where nothing is counted, with the téléservice's own limit."""
    world.app.state.authority.quota_counter = BrokenCounter()
    bad_token = {"Authorization": "Bearer not-a-token"}
    refused = await world.get(LIST, "A", params={"siren": SIREN}, headers=bad_token)
    assert refused.status_code == 401
    assert _fields(refused)[:2] == ("100000", "100000")


async def test_counter_failure_is_503(world: World) -> None:
    """Fail closed: no count, no data; 503 930003 with ``Retry-After``."""
    world.app.state.authority.quota_counter = BrokenCounter()
    response = await world.get(LIST, "A", params={"siren": SIREN})
    assert (response.status_code, response.json()["code"]) == (503, "930003")
    assert "retry-after" in response.headers


class PeekCounting(BrokenCounter):
    """A failing counter that notes every peek."""

    def __init__(self) -> None:
        self.peeks = 0

    async def peek(self, *, key: str, limit: int, now: float) -> QuotaDecision:
        self.peeks += 1
        return await super().peek(key=key, limit=limit, now=now)


async def test_a_counter_found_failing_is_not_peeked_again(world: World) -> None:
    """503 930003: the quota check's own bound is the refusal's whole wait (a second
    round trip to a black-holed store would double it); the fields are an empty window."""
    counter = PeekCounting()
    world.app.state.authority.quota_counter = counter
    response = await world.get(LIST, "A", params={"siren": SIREN})
    assert (response.status_code, response.json()["code"]) == (503, "930003")
    assert counter.peeks == 0
    assert _fields(response)[:2] == ("100000", "100000")
