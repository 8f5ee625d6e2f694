"""Products into the store: one upsert that every way of loading products goes through.

A product is matched by its SKU (catalog files) or by its handle (Shopify exports); what changed is written
and `updated_at` moves, what did not change is left alone, so loading the same catalog twice writes nothing.
Variants are matched by SKU within their product; a variant the file no longer lists is removed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models.catalog import Product, ProductVariant

MAX_PRICE = Decimal("1000000")
DEFAULT_VARIANT_TITLE = "Default"

ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"


class CatalogConflict(Exception):
    """The product cannot be stored as given: its SKU, handle or a variant SKU belongs to another product."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class VariantInput:
    sku: str
    title: str
    options: Dict[str, str]
    price: Decimal
    in_stock: bool
    position: int


@dataclass(frozen=True)
class ProductInput:
    """A product as a file describes it, validated. `image_url` may be a path ("/images/x.jpg") on the store."""

    sku: str
    handle: str
    title: str
    description: str
    currency: str
    collection: Optional[str]
    tags: Tuple[str, ...]
    image_url: Optional[str]
    variants: Tuple[VariantInput, ...]
    match_on: str = "sku"  # "sku" (catalog files) or "handle" (Shopify exports)

    @property
    def price(self) -> Decimal:
        return min(variant.price for variant in self.variants)

    @property
    def in_stock(self) -> bool:
        return any(variant.in_stock for variant in self.variants)


def slugify(text: str) -> str:
    """"Ash dining chair (set of 2)" → "ash-dining-chair-set-of-2"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def product_url(store_url: str, handle: str) -> str:
    return f"{store_url.rstrip('/')}/products/{handle}"


def _absolute(store_url: str, url: Optional[str]) -> Optional[str]:
    if url and url.startswith("/"):
        return f"{store_url.rstrip('/')}{url}"
    return url


def upsert_product(session: Session, item: ProductInput, store_url: str, now: datetime) -> str:
    """Add or update one product with its variants; returns ADDED, UPDATED or UNCHANGED.

    Raises CatalogConflict (nothing written) when its SKU, handle or a variant SKU is another product's.
    Run it inside a SAVEPOINT when other products share the transaction."""
    if item.match_on == "handle":
        product = _one(session, Product.handle == item.handle) or _one(session, Product.sku == item.sku)
    else:
        product = _one(session, Product.sku == item.sku)
    _check_conflicts(session, item, product)
    values: Dict[str, Any] = {
        "sku": item.sku,
        "handle": item.handle,
        "title": item.title,
        "description": item.description,
        "price": item.price,
        "currency": item.currency,
        "url": product_url(store_url, item.handle),
        "image_url": _absolute(store_url, item.image_url),
        "tags": list(item.tags),
        "collection": item.collection,
        "in_stock": item.in_stock,
    }
    if product is None:
        product = Product(**values, updated_at=now)
        product.variants = [_new_variant(variant) for variant in item.variants]
        session.add(product)
        session.flush()
        return ADDED

    changed = False
    for key, value in values.items():
        if getattr(product, key) != value:
            setattr(product, key, value)
            changed = True
    existing = {variant.sku: variant for variant in product.variants}
    wanted = {variant.sku for variant in item.variants}
    for sku, variant in existing.items():
        if sku not in wanted:
            product.variants.remove(variant)
            changed = True
    session.flush()  # removed variants go before any new one takes their SKU
    for given in item.variants:
        variant = existing.get(given.sku)
        if variant is None:
            product.variants.append(_new_variant(given))
            changed = True
            continue
        for key in ("title", "options", "price", "in_stock", "position"):
            value = getattr(given, key)
            if getattr(variant, key) != value:
                setattr(variant, key, dict(value) if key == "options" else value)
                changed = True
    if not changed:
        return UNCHANGED
    product.updated_at = now
    session.flush()
    return UPDATED


def _new_variant(variant: VariantInput) -> ProductVariant:
    return ProductVariant(sku=variant.sku, title=variant.title, options=dict(variant.options), price=variant.price,
                          in_stock=variant.in_stock, position=variant.position)


def _one(session: Session, condition: Any) -> Optional[Product]:
    return session.execute(select(Product).where(condition)).scalar_one_or_none()


def _check_conflicts(session: Session, item: ProductInput, product: Optional[Product]) -> None:
    own_id = product.id if product is not None else None
    other = _one(session, Product.sku == item.sku)
    if other is not None and other.id != own_id:
        raise CatalogConflict("duplicate_product", f"SKU {item.sku} belongs to another product ({other.title!r})")
    other = _one(session, Product.handle == item.handle)
    if other is not None and other.id != own_id:
        raise CatalogConflict("duplicate_product", f"handle {item.handle!r} belongs to another product ({other.title!r})")
    skus = [variant.sku for variant in item.variants]
    rows = session.execute(
        select(ProductVariant.sku, Product.title).join(Product, Product.id == ProductVariant.product_id)
        .where(ProductVariant.sku.in_(skus), ProductVariant.product_id != (own_id or -1))
    ).all()
    if rows:
        sku, title = sorted(rows)[0]
        raise CatalogConflict("duplicate_variant_sku", f"variant SKU {sku} belongs to another product ({title!r})")


def variant_title(options: Dict[str, str]) -> str:
    return " / ".join(options.values()) or DEFAULT_VARIANT_TITLE

