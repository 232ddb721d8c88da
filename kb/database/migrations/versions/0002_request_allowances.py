"""The API's request allowances, shared by its replicas

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_allowances",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_request_allowances")),
    )
    with op.batch_alter_table("request_allowances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_allowances_updated"), ["updated"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_allowances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_allowances_updated"))

    op.drop_table("request_allowances")
