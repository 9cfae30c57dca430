"""The async client: one token renewal for any number of concurrent calls, and the same
rules as the sync client (R-CON-1)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from ensu_client import AsyncClient, Document, QuotaExceeded, RetryPolicy
from ensu_client import _core as core
from tests.sdk.fake import API, CLIENT_ID, PDF, SIREN, TELESERVICE, FakeApi, problem

MENTION = f"{API}/mentionInformation"


def make_client(api: FakeApi, **options: object) -> AsyncClient:
    return AsyncClient(
        "https://api.test",
        client_id=CLIENT_ID,
        teleservice=TELESERVICE,
        transport=api.async_transport(),
        **options,  # type: ignore[arg-type]
    )


async def hundred_calls(client: AsyncClient) -> list[str]:
    ids: list[str] = []

    async def one() -> None:
        ids.append((await client.mention_information()).correlation_id)

    async with anyio.create_task_group() as group:
        for _ in range(100):
            group.start_soon(one)
    return ids


def test_100_concurrent_calls_fetch_the_token_once() -> None:
    """The token endpoint is slow: every call waits for the one renewal in flight."""
    api = FakeApi(token_delay=0.05)

    async def scenario() -> list[str]:
        async with make_client(api) as client:
            return await hundred_calls(client)

    ids = anyio.run(scenario)
    assert len(api.calls("/token")) == 1
    assert len(api.calls(MENTION)) == 100
    assert len(set(ids)) == 100
    assert {call.headers["authorization"] for call in api.calls(MENTION)} == {"Bearer token-1"}


def test_100_concurrent_calls_past_expiry_renew_the_token_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = FakeApi(token_delay=0.05)
    clock = [0.0]
    monkeypatch.setattr(core, "monotonic", lambda: clock[0])

    async def scenario() -> None:
        async with make_client(api) as client:
            await client.mention_information()
            clock[0] += 600  # the token's whole life: every call needs the next one
            await hundred_calls(client)

    anyio.run(scenario)
    assert len(api.calls("/token")) == 2
    assert [call.headers["authorization"] for call in api.calls(MENTION)][1:] == [
        "Bearer token-2"
    ] * 100


def test_the_async_client_retries_429_after_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi()
    waits: list[float] = []
    clock = [0.0]

    async def waited(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(core, "async_sleep", waited)
    monkeypatch.setattr(core, "monotonic", lambda: clock[0])

    def quota(request: httpx.Request) -> httpx.Response:
        return problem("900804", 429, correlation_id=None, retry_after=5)

    async def scenario() -> None:
        async with make_client(api, retry=RetryPolicy(budget=12)) as client:
            api.queue(MENTION, quota)
            await client.mention_information()
            api.queue(MENTION, quota, quota, quota)
            with pytest.raises(QuotaExceeded):
                await client.mention_information()

    anyio.run(scenario)
    assert waits == [5.0, 5.0, 5.0]  # the second call: 5 + 5, then 15 > 12


def test_async_pages_and_download(tmp_path: Path) -> None:
    api = FakeApi(documents=5)

    async def scenario() -> list[Document]:
        async with make_client(api) as client:
            listed = [document async for document in client.iter_documents(siren=SIREN, taille=2)]
            await client.download(listed[0], tmp_path / "a.pdf")
            content = await client.content(listed[1])
            assert content.value == PDF
            return listed

    listed = anyio.run(scenario)
    assert len(listed) == 5
    assert (tmp_path / "a.pdf").read_bytes() == PDF
    assert len(api.calls(f"{API}/documents")) == 3
