"""The catalog as the conversation uses it: read from the store once per change, not once per message.

Building the quiz engine's index and the quiz definitions costs tens of milliseconds for a large catalog;
a turn only pays for one cheap query (product and variant counts, latest update) that tells whether the
catalog changed since the snapshot was taken. Each process (action server worker) keeps its own copy.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.catalog.search import CatalogIndex, CatalogItem
from bot.models.catalog import Product, ProductVariant
from bot.quiz.definition import CatalogVocabulary, Quiz, load_quizzes
from bot.quiz.engine import ProductIndex, ProductRecord


@dataclass(frozen=True)
class CatalogSnapshot:
    fingerprint: Tuple[Any, ...]
    index: ProductIndex  # the in-stock products, ready for the quiz engine
    vocabulary: CatalogVocabulary  # every product's tags and SKUs, for checking quiz files
    search_index: CatalogIndex  # for catalog search


def product_record(product: Product) -> ProductRecord:
    """A product as the quiz engine sees it: priced at its cheapest in-stock variant (what "under $400"
    can buy), in stock when any variant is."""
    in_stock_prices = [variant.price for variant in product.variants if variant.in_stock]
    price = min(in_stock_prices) if in_stock_prices else product.price
    return ProductRecord(
        sku=product.sku, title=product.title, price=price, tags=frozenset(product.tags or ()),
        in_stock=bool(product.in_stock and (in_stock_prices or not product.variants)),
        url=product.url, image_url=product.image_url,
    )


def _fingerprint(session: Session) -> Tuple[Any, ...]:
    products = session.execute(select(func.count(Product.id), func.max(Product.updated_at))).one()
    variants = session.execute(select(func.count(ProductVariant.id))).scalar_one()
    return (products[0], str(products[1]), variants)


_lock = threading.Lock()
_snapshot: Optional[CatalogSnapshot] = None


def catalog_snapshot(session: Session) -> CatalogSnapshot:
    """The current catalog; rebuilt only when a product or variant was added, changed or removed."""
    global _snapshot
    fingerprint = _fingerprint(session)
    current = _snapshot
    if current is not None and current.fingerprint == fingerprint:
        return current
    products = session.execute(
        select(Product).options(selectinload(Product.variants)).order_by(Product.sku)
    ).scalars().all()
    records = tuple(product_record(product) for product in products)
    snapshot = CatalogSnapshot(
        fingerprint=fingerprint,
        index=ProductIndex(records),
        vocabulary=CatalogVocabulary.of(records),
        search_index=CatalogIndex(CatalogItem.from_product(product) for product in products),
    )
    with _lock:
        _snapshot = snapshot
    return snapshot


_quiz_lock = threading.Lock()
_quizzes: Dict[Tuple[Any, ...], Dict[str, Quiz]] = {}


def quizzes_for(snapshot: CatalogSnapshot, directory: Path) -> Dict[str, Quiz]:
    """The quiz definitions in `directory`, checked against the snapshot's catalog; loaded again when a
    file or the catalog changes. A broken file raises ConfigError (file, place, problem)."""
    files = sorted(list(directory.glob("*.yml")) + list(directory.glob("*.yaml")))
    key = (snapshot.fingerprint, str(directory), tuple((str(path), path.stat().st_mtime_ns) for path in files))
    with _quiz_lock:
        found = _quizzes.get(key)
    if found is not None:
        return found
    quizzes = load_quizzes(directory, snapshot.vocabulary)
    with _quiz_lock:
        _quizzes.clear()
        _quizzes[key] = quizzes
    return quizzes
