"""chat reachability: when a linked chat stopped taking the bot's messages (Telegram: the shopper blocked it)

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_identities") as batch:
        batch.add_column(sa.Column("unreachable_since", bot.models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channel_identities") as batch:
        batch.drop_column("unreachable_since")
