"""R-DATA-5, R-GW-5, R-GW-6: three consumers × every document code × inside/outside their
period × every route. No unauthorised 2xx; "outside the perimeter" and "absent" answer
identical bodies apart from the correlation id and the time stamp.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ensu.documents import catalogue
from tests.unit.gateway.conftest import CONSUMERS, SIREN, Doc, World

pytestmark = pytest.mark.anyio
PREFIX = "/ensudocuments/v1"
ABSENT = "A" * 64


def _stable(body: bytes) -> dict[str, Any]:
    problem = json.loads(body)
    problem.pop("correlationId")
    problem.pop("horodatage")
    return dict(problem)


async def _absent(world: World, name: str, suffix: str) -> dict[str, Any]:
    response = await world.get(f"{PREFIX}/documents/IDENSUA/{ABSENT}{suffix}", name)
    assert response.status_code == 404
    return _stable(response.content)


@pytest.mark.parametrize("name", [c.name for c in CONSUMERS])
async def test_one_document_routes(world: World, name: str) -> None:
    consumer = world.consumers[name]
    absent = {suffix: await _absent(world, name, suffix) for suffix in ("", "/contenu")}
    for doc in world.docs:
        allowed = consumer.allows(doc.code, doc.start, doc.end)
        for kind, identifier in (("IDENSUA", doc.idensua), ("DOCDISTRIB", doc.docdistrib)):
            for suffix in ("", "/contenu"):
                path = f"{PREFIX}/documents/{kind}/{identifier}{suffix}"
                response = await world.get(path, name)
                if allowed:
                    assert response.status_code == 200, (path, response.text)
                    _check_allowed(response.content, doc, suffix)
                else:
                    assert response.status_code == 404, (name, doc.code, doc.start)
                    assert _stable(response.content) == absent[suffix]


def _check_allowed(body: bytes, doc: Doc, suffix: str) -> None:
    if suffix:
        assert body == doc.content
        return
    metadata = json.loads(body)
    assert metadata["identifiants"]["IDENSUA"] == doc.idensua
    assert metadata["codeDocument"] == doc.code


@pytest.mark.parametrize("name", [c.name for c in CONSUMERS])
async def test_list_routes(world: World, name: str) -> None:
    consumer = world.consumers[name]
    for doc in world.docs:
        params = {
            "siren": SIREN,
            "codeDocument": doc.code,
            "dateDebut": doc.start.isoformat(),
            "dateFin": doc.end.isoformat(),
        }
        response = await world.get(f"{PREFIX}/documents", name, params=params)
        if consumer.allows(doc.code, doc.start, doc.end):
            assert response.status_code == 200, response.text
            ids = [d["identifiants"]["IDENSUA"] for d in response.json()["documents"]]
            assert ids == [doc.idensua]
        else:
            assert response.status_code == 403, (name, doc.code, doc.start)
            assert response.json()["code"] == "900910"


@pytest.mark.parametrize("name", [c.name for c in CONSUMERS])
async def test_unfiltered_list_holds_the_perimeter_only(world: World, name: str) -> None:
    consumer = world.consumers[name]
    expected = {d.idensua for d in world.docs if consumer.allows(d.code, d.start, d.end)}
    seen: set[str] = set()
    page = 1
    while True:
        params = {"siren": SIREN, "taille": "7", "page": str(page)}
        response = await world.get(f"{PREFIX}/documents", name, params=params)
        assert response.status_code == 200
        body = response.json()
        assert body["total"] == len(expected)
        seen |= {d["identifiants"]["IDENSUA"] for d in body["documents"]}
        if page * 7 >= body["total"]:
            break
        page += 1
    assert seen == expected


@pytest.mark.parametrize("name", [c.name for c in CONSUMERS])
async def test_codes_documents_and_mention(world: World, name: str) -> None:
    consumer = world.consumers[name]
    response = await world.get(f"{PREFIX}/codesDocuments", name)
    assert response.status_code == 200
    codes = {entry["code"] for entry in response.json()["codesDocuments"]}
    assert codes == consumer.allowed_codes()
    assert codes <= {entry.code for entry in catalogue.CATALOGUE}
    mention = await world.get(f"{PREFIX}/mentionInformation", name)
    assert mention.status_code == 200
    assert mention.json()["idTeleservice"] == consumer.id_teleservice
    assert "DGFIP" in mention.json()["mentionInformation"]
