"""repeat-purchase predictions: prediction_runs and purchase_predictions

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('prediction_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('as_of', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('customers_scored', sa.Integer(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('started_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_runs'))
    )
    op.create_table('purchase_predictions',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('previous_probability', sa.Float(), nullable=True),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('as_of', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('computed_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_purchase_predictions_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['prediction_runs.id'], name=op.f('fk_purchase_predictions_run_id_prediction_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_purchase_predictions'))
    )
    with op.batch_alter_table('purchase_predictions', schema=None) as batch_op:
        batch_op.create_index('ix_purchase_predictions_probability', ['probability'], unique=False)
        batch_op.create_index(batch_op.f('ix_purchase_predictions_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('purchase_predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchase_predictions_run_id'))
        batch_op.drop_index('ix_purchase_predictions_probability')

    op.drop_table('purchase_predictions')
    op.drop_table('prediction_runs')
