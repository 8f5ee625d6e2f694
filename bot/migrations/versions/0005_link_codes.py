"""channel linking: one-time link codes and wrong-code attempts

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('link_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender', sa.String(length=255), nullable=False),
    sa.Column('attempted_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_attempts'))
    )
    with op.batch_alter_table('link_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_link_attempts_sender_at', ['channel', 'sender', 'attempted_at'], unique=False)

    op.create_table('link_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('used_channel', sa.String(length=32), nullable=True),
    sa.Column('used_sender', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_link_codes_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_link_codes_code_hash'))
    )
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_codes_customer_id'), ['customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('link_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_codes_customer_id'))

    op.drop_table('link_codes')
    with op.batch_alter_table('link_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_link_attempts_sender_at')

    op.drop_table('link_attempts')
