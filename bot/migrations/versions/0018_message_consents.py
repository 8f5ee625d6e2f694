"""message consents: a shopper's yes or no to proactive messages, per chat

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('message_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('words', sa.Text(), nullable=True),
    sa.Column('recorded_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_message_consents_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_consents'))
    )
    with op.batch_alter_table('message_consents', schema=None) as batch_op:
        batch_op.create_index('ix_message_consents_chat', ['channel', 'sender_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_consents_customer_id'), ['customer_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('message_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_consents_customer_id'))
        batch_op.drop_index('ix_message_consents_chat')

    op.drop_table('message_consents')
