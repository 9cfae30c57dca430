"""Event tags, ``source:subject:action`` (as in warehouse's ``events/tags.py``)."""

from __future__ import annotations

import enum


class EventTag(enum.StrEnum):
    DOCUMENTS_BLOB_INTEGRITY_FAILURE = "documents:blob:integrity_failure"
    DOCUMENTS_IMPORT_COMPLETED = "documents:import:completed"
    SANDBOX_DATA_GENERATED = "sandbox:data:generated"
