from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Integer, String, Text

from bot.models.base import Base, Money


class Product(Base):
    """A product of the store's catalog."""

    __tablename__ = "products"

    id = Column(Integer, primary_key=True)
    sku = Column(String(64), nullable=False, unique=True)
    title = Column(String(255), nullable=False)
    description = Column(Text, nullable=False, default="")
    price = Column(Money(), nullable=False)
    currency = Column(String(3), nullable=False)
    url = Column(String(1024), nullable=False)
    image_url = Column(String(1024), nullable=True)
    tags = Column(JSON, nullable=False, default=list)
    collection = Column(String(128), nullable=True, index=True)
    in_stock = Column(Boolean, nullable=False, default=True)
