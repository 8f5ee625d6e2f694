"""the language a shopper wrote in, when not English, on handoff requests and transcripts

Revision ID: 0015
Revises: 0014

NULL means English (or not known: requests and transcripts from before this revision).
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.drop_column('language')
