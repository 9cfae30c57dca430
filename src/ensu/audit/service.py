"""The one entry point through which every feature records its events.

Nothing else writes the journal. The alert circuit of R-OPS-1 will subscribe here; for
now an event is appended to ``audit_events`` and logged (warnings for alerts).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from ensu.audit.models import Event
from ensu.audit.tags import EventTag

logger = logging.getLogger("ensu.audit")

#: Tags that are security alerts (R-OPS-1), logged at warning level.
ALERTS = frozenset({EventTag.DOCUMENTS_BLOB_INTEGRITY_FAILURE})


async def record_event(
    *,
    session: AsyncSession,
    tag: EventTag,
    actor: str,
    details: Mapping[str, object] | None = None,
) -> Event:
    """Append one event to the journal within the caller's transaction."""
    event = Event(
        at=dt.datetime.now(dt.UTC), tag=str(tag), actor=actor, details=dict(details or {})
    )
    session.add(event)
    level = logging.WARNING if tag in ALERTS else logging.INFO
    logger.log(level, "%s by %s: %s", tag, actor, event.details)
    return event
