"""``GET /ensudocuments/v1/etatSante``: the service's health, no token needed."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ensu.gateway.stamps import OPENAPI_HEADERS
from ensu.operations import service

router = APIRouter()


class EtatSante(BaseModel):
    statut: service.ServiceState
    descriptif: str


@router.get(
    "/ensudocuments/v1/etatSante",
    tags=["santé"],
    summary="État de santé du service",
    response_model=EtatSante,
    # The state is also the answer during maintenance (CONTRACT.md: 503 then); the
    # gateway's headers are on both (ensu.gateway.stamps).
    responses={
        200: {"headers": OPENAPI_HEADERS},
        503: {
            "model": EtatSante,
            "description": "Maintenance programmée",
            "headers": OPENAPI_HEADERS,
        },
    },
)
async def etat_sante(request: Request) -> Response:
    state = await service.current_state(engine=request.app.state.engine)
    status = 503 if state is service.ServiceState.MAINTENANCE else 200
    body = {"statut": state.value, "descriptif": service.DESCRIPTIONS[state]}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
