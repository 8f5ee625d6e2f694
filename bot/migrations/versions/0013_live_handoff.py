"""live handoff: assignee, reason, statuses open | waiting | closed, and handoff_messages

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

LIVE = "status IN ('open', 'waiting')"


def upgrade() -> None:
    op.drop_index("uq_handoff_requests_open_sender", table_name="handoff_requests")
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('assigned_to_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('assigned_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_shopper_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution', sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f('ix_handoff_requests_assigned_to_id'), ['assigned_to_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_handoff_requests_assigned_to_id_merchants'), 'merchants',
                                    ['assigned_to_id'], ['id'], ondelete='SET NULL')
    op.create_index("uq_handoff_requests_open_sender", "handoff_requests", ["channel", "sender_id"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_table('handoff_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('author_name', sa.String(length=100), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=12), nullable=True),
    sa.Column('delivery_note', sa.String(length=200), nullable=True),
    sa.Column('delivered_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['merchants.id'], name=op.f('fk_handoff_messages_author_id_merchants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoff_requests.id'], name=op.f('fk_handoff_messages_handoff_id_handoff_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_messages'))
    )
    with op.batch_alter_table('handoff_messages', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_messages_delivery', ['channel', 'delivery'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoff_messages_handoff_id'), ['handoff_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('handoff_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_messages_handoff_id'))
        batch_op.drop_index('ix_handoff_messages_delivery')
    op.drop_table('handoff_messages')
    op.drop_index("uq_handoff_requests_open_sender", table_name="handoff_requests")
    # A request waiting for the shopper is open again in the older scheme.
    op.execute("UPDATE handoff_requests SET status = 'open' WHERE status = 'waiting'")
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_handoff_requests_assigned_to_id_merchants'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_handoff_requests_assigned_to_id'))
        batch_op.drop_column('resolution')
        batch_op.drop_column('last_shopper_at')
        batch_op.drop_column('assigned_at')
        batch_op.drop_column('assigned_to_id')
        batch_op.drop_column('reason')
    op.create_index("uq_handoff_requests_open_sender", "handoff_requests", ["channel", "sender_id"], unique=True,
                    sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))
