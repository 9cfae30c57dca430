"""The witness routes (R-TR-2): behind the access chain, journaled, the latest signed
checkpoint and a consistency proof from the size the caller names; parameters checked
before any conversion."""

from __future__ import annotations

import pytest

from ensu.audit.service import Journal
from ensu.audit.witness import check_answer
from tests.unit.gateway.conftest import World

pytestmark = pytest.mark.anyio
PREFIX = "/ensudocuments/v1/journal"


async def test_the_latest_checkpoint_and_a_proof_from_any_size_seen(world: World) -> None:
    journal: Journal = world.app.state.journal
    verifier = journal.monitor.verifier
    none_yet = await world.get(f"{PREFIX}/pointControle", "A")
    assert (none_yet.status_code, none_yet.json()["code"]) == (404, "920404")
    await journal.writer.checkpoint()
    first = await world.get(f"{PREFIX}/pointControle", "A")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    kept = check_answer({"pointControle": first.json()}, verifier, None)
    assert first.json()["cle"] == verifier.vkey
    for _ in range(5):
        assert (await world.get(f"{PREFIX}/pointControle", "B")).status_code == 200
    await journal.writer.checkpoint()
    later = await world.get(f"{PREFIX}/coherence", "A", params={"depuis": str(kept.size)})
    assert later.status_code == 200, later.text
    assert later.json()["depuis"] == kept.size
    assert later.json()["taille"] > kept.size
    assert check_answer(later.json(), verifier, kept).size == later.json()["taille"]
    whole = await world.get(f"{PREFIX}/coherence", "A", params={"depuis": "0"})
    assert (whole.status_code, whole.json()["preuve"]) == (200, [])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "paramètre obligatoire"),
        ({"depuis": "abc"}, "un entier positif ou nul"),
        ({"depuis": "-1"}, "un entier positif ou nul"),
        ({"depuis": "9" * 5000}, "un entier positif ou nul"),
        ({"depuis": "٣"}, "un entier positif ou nul"),  # a digit, but not ASCII
        ({"depuis": "99999"}, "au-delà du dernier point de contrôle signé"),
        ({"depuis": "1", "taille": "2"}, "paramètre inconnu"),
    ],
)
async def test_a_bad_size_is_a_structured_refusal(
    world: World, params: dict[str, str], message: str
) -> None:
    await world.app.state.journal.writer.checkpoint()
    refused = await world.get(f"{PREFIX}/coherence", "A", params=params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "920400"
    assert message in refused.json()["erreurs"][0]["message"]


async def test_the_witness_routes_are_behind_the_access_chain(world: World) -> None:
    await world.app.state.journal.writer.checkpoint()
    anonymous = await world.get(f"{PREFIX}/pointControle", "A", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    foreign = await world.get(f"{PREFIX}/pointControle", "A", headers={"ID_Teleservice": "TS-B"})
    assert (foreign.status_code, foreign.json()["code"]) == (403, "910003")
