"""loyalty engine: order lines and refunds, reward codes, tiers held, expiry, outbound

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('send_after', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_outbound_messages_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_messages')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_outbound_messages_dedupe_key'))
    )
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_messages_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_outbound_messages_status_send_after', ['status', 'send_after'], unique=False)

    op.create_table('tier_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('from_tier', sa.String(length=64), nullable=True),
    sa.Column('to_tier', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('announced_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_tier_changes_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_changes'))
    )
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.create_index('ix_tier_changes_customer_announced', ['customer_id', 'announced_at'], unique=False)

    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', bot.models.base.Money(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines'))
    )
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_lines_order_id'), ['order_id'], unique=False)

    op.create_table('order_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('amount', bot.models.base.Money(), nullable=False),
    sa.Column('points_due', sa.Integer(), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_refunds_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_refunds')),
    sa.UniqueConstraint('order_id', 'external_id', name='uq_order_refunds_order_external')
    )
    op.create_table('reward_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('reward_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('value', bot.models.base.Money(), nullable=True),
    sa.Column('product_sku', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('points_spent', sa.Integer(), nullable=False),
    sa.Column('min_order', bot.models.base.Money(), nullable=True),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('used_order_ref', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_reward_codes_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_reward_codes_ledger_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reward_codes')),
    sa.UniqueConstraint('code', name=op.f('uq_reward_codes_code')),
    sa.UniqueConstraint('ledger_entry_id', name=op.f('uq_reward_codes_ledger_entry_id'))
    )
    with op.batch_alter_table('reward_codes', schema=None) as batch_op:
        batch_op.create_index('ix_reward_codes_customer_issued', ['customer_id', 'issued_at'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_activity_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('tier_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('tier_held_until', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_customers_last_activity_at'), ['last_activity_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_customers_tier_held_until'), ['tier_held_until'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_customers_external_id'), ['external_id'])

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refunded_total', bot.models.base.Money(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('points_earned', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('updated_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('status',
               existing_type=sa.VARCHAR(length=16),
               type_=sa.String(length=20),
               existing_nullable=False)

    # Orders recorded before this revision: what they earned is in the ledger.
    op.execute(
        "UPDATE orders SET points_earned = COALESCE((SELECT SUM(points) FROM ledger_entries "
        "WHERE ledger_entries.source = 'order' AND ledger_entries.source_ref = orders.external_id), 0)"
    )
    # Expiry counts from the last earning or spending.
    op.execute(
        "UPDATE customers SET last_activity_at = (SELECT MAX(created_at) FROM ledger_entries "
        "WHERE ledger_entries.customer_id = customers.id AND ledger_entries.kind IN ('earn', 'redeem'))"
    )



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('status',
               existing_type=sa.String(length=20),
               type_=sa.VARCHAR(length=16),
               existing_nullable=False)
        batch_op.drop_column('updated_at')
        batch_op.drop_column('points_earned')
        batch_op.drop_column('refunded_total')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_customers_external_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_customers_tier_held_until'))
        batch_op.drop_index(batch_op.f('ix_customers_last_activity_at'))
        batch_op.drop_column('tier_held_until')
        batch_op.drop_column('tier_name')
        batch_op.drop_column('last_activity_at')
        batch_op.drop_column('external_id')

    with op.batch_alter_table('reward_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_reward_codes_customer_issued')

    op.drop_table('reward_codes')
    op.drop_table('order_refunds')
    with op.batch_alter_table('order_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_lines_order_id'))

    op.drop_table('order_lines')
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_changes_customer_announced')

    op.drop_table('tier_changes')
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_messages_status_send_after')
        batch_op.drop_index(batch_op.f('ix_outbound_messages_customer_id'))

    op.drop_table('outbound_messages')
