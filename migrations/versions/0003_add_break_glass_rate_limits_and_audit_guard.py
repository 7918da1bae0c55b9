"""add break-glass accounts, rate-limit windows and the append-only audit guard

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:50:00

Break-glass tokens are stored as SHA-256 hashes only. Rate-limit windows live in the database
so every api replica counts against the same limit. Triggers make ``audit_events`` reject
UPDATE and DELETE; on PostgreSQL only a role allowed to disable triggers (the table owner or a
superuser) can still prune old rows, and only on purpose.
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# asyncpg runs one statement per execute, so the function and the trigger are separate.
_POSTGRES_GUARDS = ["""
CREATE OR REPLACE FUNCTION tikflow_audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
""", """
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION tikflow_audit_events_append_only()
"""]

_SQLITE_GUARDS = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE is not allowed'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE is not allowed'); END""",
]


def upgrade() -> None:
    op.create_table('break_glass_accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('token_sha256')
    )
    op.create_table('rate_limit_windows',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'window_start')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_request_id', ['request_id'], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in _POSTGRES_GUARDS:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_GUARDS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS tikflow_audit_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_request_id')
    op.drop_table('rate_limit_windows')
    op.drop_table('break_glass_accounts')
