"""Running totals per owner and period, and reservation changes as one database call each.

A reservation used to lock the owner, sum the owner's reservations of the period and write, in several round
trips whose cost grew with the owner's usage. Now `usage_totals` holds each owner's committed and reserved
units per period, its row is the lock that serializes the owner's reservations, and `reserve_units` /
`settle_units` change a reservation and the totals together in one statement from the service.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

# The columns every function returns: the reservation of the job (NULL when there is none) and the totals of
# the owner's period. `created` says whether this call made the reservation. Inside the bodies these names
# are variables too, hence `#variable_conflict use_column`.
RESULT = """
    created boolean,
    owner text,
    units bigint,
    state text,
    period_start timestamptz,
    request_id text,
    create_time timestamptz,
    update_time timestamptz,
    committed_units bigint,
    reserved_units bigint
"""

RESERVE = f"""
CREATE FUNCTION reserve_units(
    p_job text, p_owner text, p_units bigint, p_period_start timestamptz, p_quota bigint,
    p_request_id text, p_now timestamptz
) RETURNS TABLE ({RESULT}) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    held usage_totals%ROWTYPE;
    found_row reservations%ROWTYPE;
BEGIN
    INSERT INTO usage_totals (owner, period_start) VALUES (p_owner, p_period_start)
        ON CONFLICT (owner, period_start) DO NOTHING;
    SELECT * INTO held FROM usage_totals t
        WHERE t.owner = p_owner AND t.period_start = p_period_start FOR UPDATE;
    SELECT * INTO found_row FROM reservations r WHERE r.job = p_job;
    IF NOT FOUND AND held.committed + held.reserved + p_units <= p_quota THEN
        INSERT INTO reservations AS r
                (job, owner, units, state, period_start, request_id, create_time, update_time)
            VALUES (p_job, p_owner, p_units, 'reserved', p_period_start, p_request_id, p_now, p_now)
            ON CONFLICT (job) DO NOTHING
            RETURNING r.* INTO found_row;
        IF FOUND THEN
            UPDATE usage_totals t SET reserved = t.reserved + p_units
                WHERE t.owner = p_owner AND t.period_start = p_period_start
                RETURNING t.* INTO held;
            RETURN QUERY SELECT true, found_row.owner, found_row.units, found_row.state,
                found_row.period_start, found_row.request_id, found_row.create_time, found_row.update_time,
                held.committed, held.reserved;
            RETURN;
        END IF;
        -- Another owner's reservation of the same job won the race: report it as existing.
        SELECT * INTO found_row FROM reservations r WHERE r.job = p_job;
    END IF;
    RETURN QUERY SELECT false, found_row.owner, found_row.units, found_row.state, found_row.period_start,
        found_row.request_id, found_row.create_time, found_row.update_time, held.committed, held.reserved;
END;
$$
"""

SETTLE = f"""
CREATE FUNCTION settle_units(p_job text, p_owner text, p_target text, p_now timestamptz)
RETURNS TABLE ({RESULT}) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    changed reservations%ROWTYPE;
    held usage_totals%ROWTYPE;
BEGIN
    UPDATE reservations r SET state = p_target, update_time = p_now
        WHERE r.job = p_job AND r.owner = p_owner AND r.state = 'reserved'
        RETURNING r.* INTO changed;
    IF FOUND THEN
        UPDATE usage_totals t
            SET reserved = t.reserved - changed.units,
                committed = t.committed + CASE WHEN p_target = 'committed' THEN changed.units ELSE 0 END
            WHERE t.owner = p_owner AND t.period_start = changed.period_start
            RETURNING t.* INTO held;
        RETURN QUERY SELECT true, changed.owner, changed.units, changed.state, changed.period_start,
            changed.request_id, changed.create_time, changed.update_time, held.committed, held.reserved;
        RETURN;
    END IF;
    RETURN QUERY SELECT false, r.owner, r.units, r.state, r.period_start, r.request_id, r.create_time,
            r.update_time, NULL::bigint, NULL::bigint
        FROM reservations r WHERE r.job = p_job AND r.owner = p_owner;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "usage_totals",
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("committed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("committed >= 0 and reserved >= 0", name="usage_totals_not_negative"),
    )
    op.execute(
        """
        INSERT INTO usage_totals (owner, period_start, committed, reserved)
        SELECT owner, period_start,
               coalesce(sum(units) FILTER (WHERE state = 'committed'), 0),
               coalesce(sum(units) FILTER (WHERE state = 'reserved'), 0)
        FROM reservations GROUP BY owner, period_start
        """
    )
    op.execute(RESERVE)
    op.execute(SETTLE)


def downgrade() -> None:
    op.execute("DROP FUNCTION settle_units(text, text, text, timestamptz)")
    op.execute("DROP FUNCTION reserve_units(text, text, bigint, timestamptz, bigint, text, timestamptz)")
    op.drop_table("usage_totals")
