"""Event tags, ``source:subject:action`` (as in warehouse's ``events/tags.py``)."""

from __future__ import annotations

import enum


class EventTag(enum.StrEnum):
    DOCUMENTS_BLOB_INTEGRITY_FAILURE = "documents:blob:integrity_failure"
    DOCUMENTS_IMPORT_COMPLETED = "documents:import:completed"
    SANDBOX_DATA_GENERATED = "sandbox:data:generated"
    CONSUMERS_ORGANISATION_CREATED = "consumers:organisation:created"
    CONSUMERS_TELESERVICE_CREATED = "consumers:teleservice:created"
    CONSUMERS_TELESERVICE_SUSPENDED = "consumers:teleservice:suspended"
    CONSUMERS_TELESERVICE_RESUMED = "consumers:teleservice:resumed"
    CONSUMERS_TELESERVICE_REVOKED = "consumers:teleservice:revoked"
    CONSUMERS_TELESERVICE_QUOTA_DECIDED = "consumers:teleservice:quota_decided"
    OAUTH_CLIENT_AUTHENTICATION_FAILED = "oauth:client:authentication_failed"
    OAUTH_KEY_CREATED = "oauth:key:created"
    OAUTH_KEY_ROTATED = "oauth:key:rotated"
    OAUTH_TOKEN_ISSUED = "oauth:token:issued"  # noqa: S105 - a tag, not a secret
    OAUTH_TOKEN_REFUSED = "oauth:token:refused"  # noqa: S105 - a tag, not a secret
    OAUTH_TOKEN_REVOKED = "oauth:token:revoked"  # noqa: S105 - a tag, not a secret
    CONSUMERS_TELESERVICE_CERTIFICATES_REPLACED = "consumers:teleservice:certificates_replaced"
    CONSUMERS_TELESERVICE_CONTACTS_SET = "consumers:teleservice:contacts_set"
    AUDIT_JOURNAL_INTEGRITY_BREACH = "audit:journal:integrity_breach"
    AUDIT_JOURNAL_RESUMED = "audit:journal:resumed"
    AUDIT_JOURNAL_EXPORTED = "audit:journal:exported"
    AUDIT_JOURNAL_PURGED = "audit:journal:purged"
    OPERATIONS_MAINTENANCE_PLANNED = "operations:maintenance:planned"
    OPERATIONS_MAINTENANCE_CANCELLED = "operations:maintenance:cancelled"
    OPERATIONS_BACKUP_CREATED = "operations:backup:created"
    OPERATIONS_BACKUP_RESTORED = "operations:backup:restored"
    WEBHOOKS_SUBSCRIPTION_CREATED = "webhooks:subscription:created"
    WEBHOOKS_SUBSCRIPTION_ENABLED = "webhooks:subscription:enabled"
    WEBHOOKS_SUBSCRIPTION_DISABLED = "webhooks:subscription:disabled"
    WEBHOOKS_DELIVERY_REPLAYED = "webhooks:delivery:replayed"
    OPERATIONS_SECURITY_EVENT_RAISED = "operations:security_event:raised"
    OPERATIONS_SERVICE_CUT = "operations:service:cut"
    OPERATIONS_SERVICE_RESTORED = "operations:service:restored"
    OPERATIONS_INCIDENT_OPENED = "operations:incident:opened"
    OPERATIONS_INCIDENT_ACTION = "operations:incident:action"
    OPERATIONS_INCIDENT_CLOSED = "operations:incident:closed"
    CONSUMERS_TELESERVICE_RESTRICTED = "consumers:teleservice:restricted"
    CONSUMERS_TELESERVICE_RESTRICTION_LIFTED = "consumers:teleservice:restriction_lifted"
    OPERATIONS_BREACH_RECORDED = "operations:breach:recorded"
    OPERATIONS_BREACH_CNIL_NOTIFIED = "operations:breach:cnil_notified"
    OPERATIONS_BREACH_DEADLINE_ALERT = "operations:breach:deadline_alert"
    OPERATIONS_BREACH_CONTROLLERS_INFORMED = "operations:breach:controllers_informed"
    OPERATIONS_BREACH_CLOSED = "operations:breach:closed"
