"""advocacy: referrals, reviews, user content and social follows

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('referral_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_referral_codes_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_codes')),
    sa.UniqueConstraint('code', name=op.f('uq_referral_codes_code')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_referral_codes_customer_id'))
    )
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('sender_id', sa.String(length=255), nullable=False),
    sa.Column('product_sku', sa.String(length=64), nullable=False),
    sa.Column('product_title', sa.String(length=255), nullable=False),
    sa.Column('order_external_id', sa.String(length=64), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('media_kind', sa.String(length=8), nullable=False),
    sa.Column('media_reference', sa.String(length=512), nullable=True),
    sa.Column('media_urls', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('moderation_note', sa.String(length=255), nullable=True),
    sa.Column('moderated_by', sa.String(length=64), nullable=True),
    sa.Column('moderated_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('points_awarded', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_reviews_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews')),
    sa.UniqueConstraint('channel', 'sender_id', 'product_sku', name='uq_reviews_sender_product'),
    sa.UniqueConstraint('customer_id', 'product_sku', name='uq_reviews_customer_product')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_status_created', ['status', 'created_at'], unique=False)

    op.create_table('social_follow_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('network', sa.String(length=32), nullable=False),
    sa.Column('handle', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('moderation_note', sa.String(length=255), nullable=True),
    sa.Column('moderated_by', sa.String(length=64), nullable=True),
    sa.Column('moderated_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('points_awarded', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_social_follow_claims_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_social_follow_claims')),
    sa.UniqueConstraint('customer_id', 'network', name='uq_social_follow_claims_customer_network')
    )
    with op.batch_alter_table('social_follow_claims', schema=None) as batch_op:
        batch_op.create_index('ix_social_follow_claims_status_created', ['status', 'created_at'], unique=False)

    op.create_table('referral_clicks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_code_id', sa.Integer(), nullable=False),
    sa.Column('clicked_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ip_hash', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['referral_code_id'], ['referral_codes.id'], name=op.f('fk_referral_clicks_referral_code_id_referral_codes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_clicks'))
    )
    with op.batch_alter_table('referral_clicks', schema=None) as batch_op:
        batch_op.create_index('ix_referral_clicks_code_clicked', ['referral_code_id', 'clicked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_referral_clicks_ip_hash'), ['ip_hash'], unique=False)

    op.create_table('review_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('product_sku', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sent_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_review_requests_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_review_requests_order_id_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_requests')),
    sa.UniqueConstraint('order_id', 'product_sku', 'kind', name='uq_review_requests_order_product_kind')
    )
    with op.batch_alter_table('review_requests', schema=None) as batch_op:
        batch_op.create_index('ix_review_requests_customer_product', ['customer_id', 'product_sku'], unique=False)
        batch_op.create_index('ix_review_requests_customer_sent', ['customer_id', 'sent_at'], unique=False)

    op.create_table('referrals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_code_id', sa.Integer(), nullable=False),
    sa.Column('advocate_id', sa.Integer(), nullable=False),
    sa.Column('friend_customer_id', sa.Integer(), nullable=True),
    sa.Column('friend_channel', sa.String(length=32), nullable=True),
    sa.Column('friend_sender_id', sa.String(length=255), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('click_id', sa.Integer(), nullable=True),
    sa.Column('ip_hash', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('order_external_id', sa.String(length=64), nullable=True),
    sa.Column('points_awarded', sa.Integer(), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['advocate_id'], ['customers.id'], name=op.f('fk_referrals_advocate_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['click_id'], ['referral_clicks.id'], name=op.f('fk_referrals_click_id_referral_clicks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['friend_customer_id'], ['customers.id'], name=op.f('fk_referrals_friend_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referral_code_id'], ['referral_codes.id'], name=op.f('fk_referrals_referral_code_id_referral_codes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referrals')),
    sa.UniqueConstraint('friend_channel', 'friend_sender_id', name='uq_referrals_friend_sender'),
    sa.UniqueConstraint('friend_customer_id', name=op.f('uq_referrals_friend_customer_id'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_advocate_status', ['advocate_id', 'status'], unique=False)
        batch_op.create_index('ix_referrals_ip_created', ['ip_hash', 'created_at'], unique=False)

    op.create_table('friend_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('referral_code_id', sa.Integer(), nullable=False),
    sa.Column('click_id', sa.Integer(), nullable=True),
    sa.Column('referral_id', sa.Integer(), nullable=True),
    sa.Column('percent_off', sa.Integer(), nullable=False),
    sa.Column('min_order', bot.models.base.Money(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', bot.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('used_order_ref', sa.String(length=64), nullable=True),
    sa.Column('used_by_customer_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['click_id'], ['referral_clicks.id'], name=op.f('fk_friend_offers_click_id_referral_clicks'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['referral_code_id'], ['referral_codes.id'], name=op.f('fk_friend_offers_referral_code_id_referral_codes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_friend_offers_referral_id_referrals'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['used_by_customer_id'], ['customers.id'], name=op.f('fk_friend_offers_used_by_customer_id_customers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_friend_offers')),
    sa.UniqueConstraint('click_id', name=op.f('uq_friend_offers_click_id')),
    sa.UniqueConstraint('code', name=op.f('uq_friend_offers_code'))
    )
    with op.batch_alter_table('friend_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_friend_offers_referral_code_id'), ['referral_code_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_friend_offers_referral_id'), ['referral_id'], unique=False)

    op.create_table('referral_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referral_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', bot.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_referral_decisions_referral_id_referrals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_decisions'))
    )
    with op.batch_alter_table('referral_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_referral_decisions_referral_id'), ['referral_id'], unique=False)

    with op.batch_alter_table('content_submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moderation_note', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('moderated_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('moderated_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('points_awarded', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fulfilled_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('shipping_address_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('ip_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_ip_hash'), ['ip_hash'], unique=False)
        batch_op.create_index('ix_orders_status_fulfilled', ['status', 'fulfilled_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_shipping_address_hash'), ['shipping_address_hash'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_fulfilled')
        batch_op.drop_index(batch_op.f('ix_orders_shipping_address_hash'))
        batch_op.drop_index(batch_op.f('ix_orders_ip_hash'))
        batch_op.drop_column('ip_hash')
        batch_op.drop_column('shipping_address_hash')
        batch_op.drop_column('fulfilled_at')

    with op.batch_alter_table('content_submissions', schema=None) as batch_op:
        batch_op.drop_column('points_awarded')
        batch_op.drop_column('moderated_at')
        batch_op.drop_column('moderated_by')
        batch_op.drop_column('moderation_note')

    with op.batch_alter_table('referral_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_decisions_referral_id'))

    op.drop_table('referral_decisions')
    with op.batch_alter_table('friend_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_friend_offers_referral_id'))
        batch_op.drop_index(batch_op.f('ix_friend_offers_referral_code_id'))

    op.drop_table('friend_offers')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_ip_created')
        batch_op.drop_index('ix_referrals_advocate_status')

    op.drop_table('referrals')
    with op.batch_alter_table('review_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_review_requests_customer_sent')
        batch_op.drop_index('ix_review_requests_customer_product')

    op.drop_table('review_requests')
    with op.batch_alter_table('referral_clicks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referral_clicks_ip_hash'))
        batch_op.drop_index('ix_referral_clicks_code_clicked')

    op.drop_table('referral_clicks')
    with op.batch_alter_table('social_follow_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_social_follow_claims_status_created')

    op.drop_table('social_follow_claims')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_reviews_status_created')

    op.drop_table('reviews')
    op.drop_table('referral_codes')
