"""The compliance clock: commitments, risks, suspensions, resiliations, terms versions
and acceptances, change announcements, notices, job runs (R-SEC-2 to R-SEC-4, R-SQ-4 to
R-SQ-6, R-OPS-4, R-TR-4).

Revision ID: ed36223bd6f0
Revises: 6c993046375d
Create Date: 2026-12-08 01:38:52.887821
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ed36223bd6f0"
down_revision: str | None = "3a57919f7d99"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "environment",
            sa.Enum("sandbox", "production", name="environment", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("announced_on", sa.Date(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("emergency_reason", sa.Text(), nullable=True),
        sa.Column("announced_by", sa.String(length=200), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "emergency_reason IS NULL OR length(emergency_reason) > 0",
            name=op.f("ck_change_announcements_reason_given"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_announcements")),
    )
    with op.batch_alter_table("change_announcements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_announcements_effective_on"), ["effective_on"], unique=False
        )

    op.create_table(
        "compliance_commitments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_teleservice", sa.String(length=64), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "homologation", "questionnaire", name="commitmentkind", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("reference_date", sa.Date(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "submitted",
                "validated",
                "superseded",
                "rejected",
                name="commitmentstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("reservations", sa.Text(), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("document_reference", sa.String(length=200), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("validated_by", sa.String(length=200), nullable=True),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_commitments")),
    )
    with op.batch_alter_table("compliance_commitments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_commitments_deadline"), ["deadline"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_commitments_id_teleservice"), ["id_teleservice"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_commitments_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )

    op.create_table(
        "compliance_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=True),
        sa.Column("id_teleservice", sa.String(length=64), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_compliance_notices_key")),
    )
    with op.batch_alter_table("compliance_notices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_notices_id_teleservice"), ["id_teleservice"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_compliance_notices_kind"), ["kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_compliance_notices_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_compliance_notices_status"), ["status"], unique=False)

    op.create_table(
        "compliance_resiliations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_teleservice", sa.String(length=64), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=False),
        sa.Column(
            "party",
            sa.Enum("consumer", "producer", name="party", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "notice",
                "security",
                "legal_basis",
                name="resiliationkind",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_resiliations")),
    )
    with op.batch_alter_table("compliance_resiliations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_resiliations_effective_on"), ["effective_on"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_resiliations_id_teleservice"),
            ["id_teleservice"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_resiliations_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )

    op.create_table(
        "compliance_risks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_teleservice", sa.String(length=64), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("resolution_deadline", sa.Date(), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_risks")),
    )
    with op.batch_alter_table("compliance_risks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_risks_id_teleservice"), ["id_teleservice"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_risks_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )

    op.create_table(
        "compliance_suspensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_teleservice", sa.String(length=64), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=False),
        sa.Column(
            "cause",
            sa.Enum("commitment", "risk", name="suspensioncause", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("cause_id", sa.Integer(), nullable=False),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_suspensions")),
    )
    with op.batch_alter_table("compliance_suspensions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_compliance_suspensions_id_teleservice"), ["id_teleservice"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_compliance_suspensions_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )

    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job", "slot", name=op.f("uq_job_runs_job_slot")),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_runs_job"), ["job"], unique=False)

    op.create_table(
        "terms_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_siret", sa.String(length=14), nullable=False),
        sa.Column("terms_version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("accepted_by", sa.String(length=200), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms_acceptances")),
        sa.UniqueConstraint(
            "organisation_siret",
            "terms_version_id",
            name=op.f("uq_terms_acceptances_organisation_siret_terms_version_id"),
        ),
    )
    with op.batch_alter_table("terms_acceptances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_terms_acceptances_organisation_siret"),
            ["organisation_siret"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_terms_acceptances_terms_version_id"), ["terms_version_id"], unique=False
        )

    op.create_table(
        "terms_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "environment",
            sa.Enum("sandbox", "production", name="environment", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms_versions")),
        sa.UniqueConstraint(
            "environment", "version", name=op.f("uq_terms_versions_environment_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("terms_versions")
    with op.batch_alter_table("terms_acceptances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terms_acceptances_terms_version_id"))
        batch_op.drop_index(batch_op.f("ix_terms_acceptances_organisation_siret"))

    op.drop_table("terms_acceptances")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_runs_job"))

    op.drop_table("job_runs")
    with op.batch_alter_table("compliance_suspensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_suspensions_organisation_siret"))
        batch_op.drop_index(batch_op.f("ix_compliance_suspensions_id_teleservice"))

    op.drop_table("compliance_suspensions")
    with op.batch_alter_table("compliance_risks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_risks_organisation_siret"))
        batch_op.drop_index(batch_op.f("ix_compliance_risks_id_teleservice"))

    op.drop_table("compliance_risks")
    with op.batch_alter_table("compliance_resiliations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_resiliations_organisation_siret"))
        batch_op.drop_index(batch_op.f("ix_compliance_resiliations_id_teleservice"))
        batch_op.drop_index(batch_op.f("ix_compliance_resiliations_effective_on"))

    op.drop_table("compliance_resiliations")
    with op.batch_alter_table("compliance_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_notices_status"))
        batch_op.drop_index(batch_op.f("ix_compliance_notices_organisation_siret"))
        batch_op.drop_index(batch_op.f("ix_compliance_notices_kind"))
        batch_op.drop_index(batch_op.f("ix_compliance_notices_id_teleservice"))

    op.drop_table("compliance_notices")
    with op.batch_alter_table("compliance_commitments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compliance_commitments_organisation_siret"))
        batch_op.drop_index(batch_op.f("ix_compliance_commitments_id_teleservice"))
        batch_op.drop_index(batch_op.f("ix_compliance_commitments_deadline"))

    op.drop_table("compliance_commitments")
    with op.batch_alter_table("change_announcements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_announcements_effective_on"))

    op.drop_table("change_announcements")
