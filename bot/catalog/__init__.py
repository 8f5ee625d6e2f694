"""The store's catalog: products with variants, loaded from data/catalog.yml or a Shopify product export.

`load_catalog` reads and validates a catalog file, `upsert_product` is the one way products get into the
store (the demo seed and `python -m bot catalog import` both use it), `import_catalog` is the importer.
"""
from bot.catalog.loader import load_catalog, read_catalog
from bot.catalog.service import (
    ADDED, UNCHANGED, UPDATED, CatalogConflict, ProductInput, VariantInput, product_url, slugify, upsert_product,
)

__all__ = [
    "ADDED", "UNCHANGED", "UPDATED", "CatalogConflict", "ProductInput", "VariantInput", "load_catalog",
    "product_url", "read_catalog", "slugify", "upsert_product",
]
