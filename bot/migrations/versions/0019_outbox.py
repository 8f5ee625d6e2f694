"""outbox: every proactive message's channel, recipient, state reason, error, attempts and delivery time;
the shopper's time zone for quiet hours

Revision ID: 0019
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UTC = bot.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=24),
                           existing_nullable=False)
        batch.add_column(sa.Column("expires_at", UTC, nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("recipient", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("routed_at", UTC, nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reason", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("error", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("delivered_at", UTC, nullable=True))
        batch.add_column(sa.Column("updated_at", UTC, nullable=True))
        batch.create_index("ix_outbound_messages_customer_routed", ["customer_id", "routed_at"], unique=False)
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("time_zone")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_index("ix_outbound_messages_customer_routed")
        for column in ("updated_at", "delivered_at", "error", "reason", "attempts", "routed_at", "recipient",
                       "channel", "expires_at"):
            batch.drop_column(column)
        batch.alter_column("status", existing_type=sa.String(length=24), type_=sa.String(length=16),
                           existing_nullable=False)
