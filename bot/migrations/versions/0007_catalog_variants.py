"""catalog variants

Products get variants (their own SKU, options, price and stock), a handle and updated_at. Products already
in the store get one "Default" variant with their SKU, price and stock, so price and in_stock stay what the
variants say.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import bot.models.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('price', bot.models.base.Money(), nullable=False),
    sa.Column('in_stock', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_variants_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_variants')),
    sa.UniqueConstraint('sku', name=op.f('uq_product_variants_sku'))
    )
    with op.batch_alter_table('product_variants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_variants_product_id'), ['product_id'], unique=False)

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handle', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('updated_at', bot.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_products_handle'), ['handle'])

    op.execute("UPDATE products SET updated_at = CURRENT_TIMESTAMP")
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.alter_column('updated_at', existing_type=bot.models.base.UTCDateTime(timezone=True), nullable=False)
    # Last: on SQLite each batch operation above rebuilds `products`, and dropping the old copy would cascade.
    op.execute(
        "INSERT INTO product_variants (product_id, sku, title, options, price, in_stock, position) "
        "SELECT id, sku, 'Default', '{}', price, in_stock, 1 FROM products"
    )

def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_products_handle'), type_='unique')
        batch_op.drop_column('updated_at')
        batch_op.drop_column('handle')

    with op.batch_alter_table('product_variants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_variants_product_id'))

    op.drop_table('product_variants')
