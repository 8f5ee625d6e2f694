"""store webhooks: the durable event inbox, the store's order ids, when tracking was reported

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("delivery_key", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", bot.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", bot.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", bot.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=255), nullable=True),
        sa.Column("applied_at", bot.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resource", sa.String(length=100), nullable=True),
        sa.Column("resource_updated_at", bot.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_events")),
        sa.UniqueConstraint("source", "shop", "delivery_key", name="uq_store_events_delivery"),
    )
    op.create_index("ix_store_events_state_due", "store_events", ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_store_events_resource", "store_events", ["source", "shop", "resource"], unique=False)
    op.create_index("ix_store_events_received", "store_events", ["received_at"], unique=False)
    op.create_table(
        "store_order_refs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("shop", sa.String(length=255), nullable=False),
        sa.Column("store_order_id", sa.String(length=64), nullable=False),
        sa.Column("order_external_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", bot.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_order_refs")),
        sa.UniqueConstraint("source", "shop", "store_order_id", name="uq_store_order_refs_store_order"),
    )
    op.create_index(op.f("ix_store_order_refs_order_external_id"), "store_order_refs", ["order_external_id"],
                    unique=False)
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_reported_at", bot.models.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("tracking_reported_at")
    op.drop_index(op.f("ix_store_order_refs_order_external_id"), table_name="store_order_refs")
    op.drop_table("store_order_refs")
    op.drop_index("ix_store_events_received", table_name="store_events")
    op.drop_index("ix_store_events_resource", table_name="store_events")
    op.drop_index("ix_store_events_state_due", table_name="store_events")
    op.drop_table("store_events")
