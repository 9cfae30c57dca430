"""journal purge below a checkpoint

The retention purge (R-TR-4) empties only leaves that a signed checkpoint old enough
covers (R-TR-2: verification accepts a purged leaf only when its retention had passed at
the time of a signed checkpoint, counted from the first checkpoint that covers it, since
its own time went with its record). ``ensu_journal_purge()`` therefore takes the bound
``p_below``: leaves with ``leaf_index < p_below`` only. The three-argument form is
dropped; the trigger is unchanged.

Revision ID: 5d2e8f1c7a40
Revises: 1c0a9136189f
Create Date: 2026-12-02 19:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5d2e8f1c7a40"
down_revision: str | None = "1c0a9136189f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BODY = """
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    purged bigint;
BEGIN
    PERFORM set_config('ensu.journal_purge', 'on', true);
    UPDATE journal_leaves SET record = NULL, purged_at = p_now
     WHERE retention = p_retention AND at < p_cutoff AND record IS NOT NULL{bound};
    GET DIAGNOSTICS purged = ROW_COUNT;
    PERFORM set_config('ensu.journal_purge', 'off', true);
    RETURN purged;
END
$$
"""
PURGE_BELOW = (
    "CREATE FUNCTION ensu_journal_purge(p_retention text, p_cutoff timestamptz,"
    " p_now timestamptz, p_below bigint)" + _BODY.format(bound=" AND leaf_index < p_below")
)
PURGE = (
    "CREATE FUNCTION ensu_journal_purge(p_retention text, p_cutoff timestamptz,"
    " p_now timestamptz)" + _BODY.format(bound="")
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS ensu_journal_purge(text, timestamptz, timestamptz)")
    op.execute(PURGE_BELOW)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS ensu_journal_purge(text, timestamptz, timestamptz, bigint)")
    op.execute(PURGE)
