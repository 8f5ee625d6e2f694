"""quiz runs and product searches

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product_searches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('relaxed', sa.JSON(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_product_searches_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_searches'))
    )
    with op.batch_alter_table('product_searches', schema=None) as batch_op:
        batch_op.create_index('ix_product_searches_conversation', ['channel', 'sender_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_searches_customer_id'), ['customer_id'], unique=False)

    op.create_table('quiz_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('quiz_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('current_question', sa.String(length=64), nullable=True),
    sa.Column('pending', sa.JSON(), nullable=False),
    sa.Column('misses', sa.Integer(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('relaxed', sa.JSON(), nullable=False),
    sa.Column('points_awarded', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('consent_text', sa.Text(), nullable=True),
    sa.Column('consent_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_quiz_runs_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quiz_runs'))
    )
    with op.batch_alter_table('quiz_runs', schema=None) as batch_op:
        batch_op.create_index('ix_quiz_runs_conversation', ['channel', 'sender_id', 'quiz_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_quiz_runs_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_quiz_runs_quiz_started', ['quiz_id', 'started_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('quiz_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_quiz_runs_quiz_started')
        batch_op.drop_index(batch_op.f('ix_quiz_runs_customer_id'))
        batch_op.drop_index('ix_quiz_runs_conversation')

    op.drop_table('quiz_runs')
    with op.batch_alter_table('product_searches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_searches_customer_id'))
        batch_op.drop_index('ix_product_searches_conversation')

    op.drop_table('product_searches')
