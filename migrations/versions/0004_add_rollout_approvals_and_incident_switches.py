"""add rollout policy, approval mode and progress to plans, and incident switches

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:45:00

Additive only: new columns have server defaults, so code of the previous release keeps working
against this schema.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_mode", sa.String(length=16), server_default="auto",
                                      nullable=False))
        batch_op.add_column(sa.Column("rollout", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("progress", sa.JSON(), server_default="{}", nullable=False))
    op.create_table(
        "incident_switches",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("incident_switches")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("progress")
        batch_op.drop_column("rollout")
        batch_op.drop_column("approval_mode")
