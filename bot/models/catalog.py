from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import relationship

from bot.models.base import Base, Money, UTCDateTime


class Product(Base):
    """A product of the store's catalog.

    Its variants (size, colour, finish…) carry their own SKU, price and stock; `price` is the lowest variant
    price and `in_stock` whether any variant is in stock, both kept by bot.catalog.upsert_product. Material,
    colour and use are tags. `handle` is the product's slug (Shopify's Handle): its page is
    store_url + "/products/<handle>"."""

    __tablename__ = "products"

    id = Column(Integer, primary_key=True)
    sku = Column(String(64), nullable=False, unique=True)
    handle = Column(String(255), nullable=True, unique=True)
    title = Column(String(255), nullable=False)
    description = Column(Text, nullable=False, default="")
    price = Column(Money(), nullable=False)
    currency = Column(String(3), nullable=False)
    url = Column(String(1024), nullable=False)
    image_url = Column(String(1024), nullable=True)
    tags = Column(JSON, nullable=False, default=list)
    collection = Column(String(128), nullable=True, index=True)
    in_stock = Column(Boolean, nullable=False, default=True)
    updated_at = Column(UTCDateTime(), nullable=False)

    variants = relationship(
        "ProductVariant", back_populates="product", order_by="ProductVariant.position",
        cascade="all, delete-orphan", passive_deletes=True,
    )


class ProductVariant(Base):
    """One buyable version of a product: "Oak / Large" with options {"Finish": "Oak", "Size": "Large"}.

    A product without options has one variant (title "Default", options {})."""

    __tablename__ = "product_variants"

    id = Column(Integer, primary_key=True)
    product_id = Column(Integer, ForeignKey("products.id", ondelete="CASCADE"), nullable=False, index=True)
    sku = Column(String(64), nullable=False, unique=True)
    title = Column(String(255), nullable=False)
    options = Column(JSON, nullable=False, default=dict)
    price = Column(Money(), nullable=False)
    in_stock = Column(Boolean, nullable=False, default=True)
    position = Column(Integer, nullable=False, default=1)

    product = relationship("Product", back_populates="variants")
