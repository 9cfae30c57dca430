"""The witness routes: every consumer can witness the journal (R-TR-2).

``GET /ensudocuments/v1/journal/pointControle`` serves the latest signed checkpoint (the
signed note, and its fields in the contract's French words);
``GET /ensudocuments/v1/journal/coherence?depuis=N`` adds the RFC 9162 §2.1.4 proof that
the tree of ``N`` leaves the caller saw is a prefix of it. See :mod:`ensu.audit.witness`
for why, and for the client's check.

Behind the whole access chain, like the data routes: the answer holds no tax data, but
the journal's size and pace are the service's activity, for habilitated consumers only;
the chain also journals each witness call and counts it in the quota (a proof costs a
few dozen reads). Not served during an integrity stop (503 930002, as every route): a
consumer seeing the stop knows as much as a proof would tell.

They live beside the document routes, not in ``audit/``: they are routes of the API
behind the gateway, for the same callers and with the same request headers, while the
journal they read stays a floor below the gateway (ARCHITECTURE.md, the request path).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ensu.audit.service import Journal
from ensu.audit.witness import BeyondTheLog, WitnessAnswer
from ensu.documents.queries import refuse_unknown
from ensu.documents.router import OPENAPI_PARAMETERS, OPENAPI_RESPONSES
from ensu.errors import InvalidParameter, NotFound
from ensu.gateway.caller import CallerDep

PREFIX = "/ensudocuments/v1"
#: A tree size has at most 19 digits (a signed 64-bit index): checked before ``int()``.
MAX_DIGITS = 19
JSON = "application/json"

router = APIRouter(prefix=f"{PREFIX}/journal", tags=["journal"])

_B64 = {"type": "string", "format": "byte"}
_CHECKPOINT: dict[str, Any] = {
    "type": "object",
    "required": ["origine", "taille", "racine", "horodatage", "precedent", "note", "cle"],
    "properties": {
        "origine": {"type": "string", "description": "Origine du journal (nom de la clé)"},
        "taille": {"type": "integer", "minimum": 0, "description": "Nombre de feuilles"},
        "racine": {**_B64, "description": "Racine de l'arbre de Merkle (RFC 9162)"},
        "horodatage": {"type": "string", "format": "date-time"},
        "precedent": {
            "type": ["integer", "null"],
            "description": "Taille du point de contrôle signé juste avant",
        },
        "note": {
            "type": "string",
            "description": "Le point de contrôle signé (C2SP signed-note), ce qui fait foi",
        },
        "cle": {
            "type": "string",
            "description": "Clé de vérification (vkey) ; à comparer à celle publiée",
        },
    },
}
_CONSISTENCY: dict[str, Any] = {
    "type": "object",
    "required": ["depuis", "taille", "preuve", "pointControle"],
    "properties": {
        "depuis": {"type": "integer", "minimum": 0},
        "taille": {"type": "integer", "minimum": 0},
        "preuve": {"type": "array", "items": _B64, "description": "Preuve RFC 9162 §2.1.4"},
        "pointControle": _CHECKPOINT,
    },
}
_SINCE = {
    "name": "depuis",
    "in": "query",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
    "description": "La taille du dernier point de contrôle vérifié par l'appelant.",
}


def _responses(schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    ok = {**OPENAPI_RESPONSES[200], "description": "OK", "content": {JSON: {"schema": schema}}}
    return {**OPENAPI_RESPONSES, 200: ok}


async def _answer(request: Request, since: int | None) -> WitnessAnswer:
    journal: Journal = request.app.state.journal
    try:
        answer = await journal.witness(since=since)
    except BeyondTheLog as beyond:
        message = f"au-delà du dernier point de contrôle signé ({beyond.size} feuilles)"
        raise InvalidParameter([("depuis", message)]) from None
    if answer is None:
        raise NotFound("Aucun point de contrôle n'a encore été signé.", reason="no_checkpoint")
    return answer


def _json(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), media_type=JSON, headers={"Cache-Control": "no-store"})


@router.get(
    "/pointControle",
    summary="Dernier point de contrôle signé du journal",
    responses=_responses(_CHECKPOINT),
    openapi_extra={"parameters": OPENAPI_PARAMETERS},
)
async def point_controle(request: Request, caller: CallerDep) -> Response:
    del caller  # the chain established it; the answer is the same for every consumer
    refuse_unknown(request.query_params, frozenset())
    return _json((await _answer(request, None)).checkpoint_json())


@router.get(
    "/coherence",
    summary="Preuve de cohérence depuis un point de contrôle vu par l'appelant",
    responses=_responses(_CONSISTENCY),
    openapi_extra={"parameters": [*OPENAPI_PARAMETERS, _SINCE]},
)
async def coherence(request: Request, caller: CallerDep) -> Response:
    del caller
    params = request.query_params
    refuse_unknown(params, frozenset({"depuis"}))
    raw = params.get("depuis")
    if raw is None:
        raise InvalidParameter([("depuis", "paramètre obligatoire")])
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS):
        raise InvalidParameter([("depuis", "un entier positif ou nul")])
    return _json((await _answer(request, int(raw))).consistency_json())
