"""Imports every feature's tables so that ``Base.metadata`` is complete (for Alembic)."""

from ensu.accounts import models as accounts_models
from ensu.audit import models as audit_models
from ensu.compliance import models as compliance_models
from ensu.consumers import models as consumers_models
from ensu.documents import models as documents_models
from ensu.gateway.quota import models as quota_models
from ensu.habilitations import models as habilitations_models
from ensu.oauth import models as oauth_models
from ensu.operations import models as operations_models
from ensu.webhooks import models as webhooks_models

__all__ = [
    "accounts_models",
    "audit_models",
    "compliance_models",
    "consumers_models",
    "documents_models",
    "habilitations_models",
    "oauth_models",
    "operations_models",
    "quota_models",
    "webhooks_models",
]
