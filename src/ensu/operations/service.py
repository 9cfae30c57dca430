"""Service state, as ``etatSante`` reports it (R-SQ-1, R-SQ-2).

Maintenance windows arrive with the operations issue; today the state is ``ok`` when the
database answers and ``degrade`` when it does not.
"""

from __future__ import annotations

import enum

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine


class ServiceState(enum.StrEnum):
    OK = "ok"
    MAINTENANCE = "maintenance"
    DEGRADE = "degrade"


DESCRIPTIONS = {
    ServiceState.OK: "Le service fonctionne normalement.",
    ServiceState.MAINTENANCE: "Le service est en maintenance programmée.",
    ServiceState.DEGRADE: "Le service fonctionne en mode dégradé.",
}


async def current_state(*, engine: AsyncEngine) -> ServiceState:
    """``ok`` when the database answers a trivial query, ``degrade`` otherwise."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return ServiceState.DEGRADE
    return ServiceState.OK
