"""``GET /ensudocuments/v1/etatSante``: the service's health, no token needed."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ensu.errors import ServiceCut
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
    app_state = request.app.state
    now = time.time()
    window = app_state.maintenance.current(now)
    cut = app_state.cuts.current() is not None
    state = await service.current_state(engine=app_state.engine, window=window, cut=cut)
    body = {"statut": state.value, "descriptif": service.DESCRIPTIONS[state]}
    if cut and window is None:  # R-OPS-2: the whole service cut by an incident
        body["descriptif"] = ServiceCut.default_detail
        headers = {"Retry-After": str(ServiceCut.RETRY_AFTER)}
        return Response(
            orjson.dumps(body), status_code=503, media_type="application/json", headers=headers
        )
    if window is None:
        return Response(orjson.dumps(body), media_type="application/json")
    # R-SQ-1: 503 with Retry-After (the seconds to the window's end) during maintenance.
    headers = {"Retry-After": str(window.retry_after(now))}
    return Response(
        orjson.dumps(body), status_code=503, media_type="application/json", headers=headers
    )
