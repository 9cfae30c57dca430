"""``GET /ensudocuments/v1/etatSante``: the service's health, no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from ensu.operations import service

router = APIRouter()


@router.get("/ensudocuments/v1/etatSante", tags=["santé"], summary="État de santé du service")
async def etat_sante(request: Request) -> ORJSONResponse:
    state = await service.current_state(engine=request.app.state.engine)
    status = 503 if state is service.ServiceState.MAINTENANCE else 200
    return ORJSONResponse(
        {"statut": state.value, "descriptif": service.DESCRIPTIONS[state]}, status_code=status
    )
