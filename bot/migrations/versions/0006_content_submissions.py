"""content submissions

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('content_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reference', sa.String(length=512), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=False),
    sa.Column('caption', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_content_submissions_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_content_submissions')),
    sa.UniqueConstraint('channel', 'reference', name='uq_content_submissions_channel_reference')
    )
    with op.batch_alter_table('content_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_content_submissions_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_content_submissions_status_created', ['status', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('content_submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_content_submissions_status_created')
        batch_op.drop_index(batch_op.f('ix_content_submissions_customer_id'))

    op.drop_table('content_submissions')
