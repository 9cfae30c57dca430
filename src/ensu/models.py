"""Imports every feature's tables so that ``Base.metadata`` is complete (for Alembic)."""

from ensu.audit import models as audit_models
from ensu.documents import models as documents_models

__all__ = ["audit_models", "documents_models"]
