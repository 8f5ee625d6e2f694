"""The catalog file (data/catalog.yml), validated on load.

    currency: USD                    # optional; must be the program's currency
    products:
      - sku: OE-LT-002               # required, unique
        title: Pebble table lamp     # required
        price: 79.00                 # required without variants; the variants' own price otherwise
        collection: Lighting
        description: "Hand-glazed ceramic base…"
        tags: [lamp, ceramic, table] # product type, material, colour, use: lower-case words
        handle: pebble-table-lamp    # optional; the page is store_url/products/<handle> (default: from the title)
        image: /images/oe-lt-002.jpg # optional; a path on the store or a URL (default: /images/<sku>.jpg)
        in_stock: true               # optional, without variants
        variants:                    # optional: each with its own SKU, options, price and stock
          - {sku: OE-LT-002-SND, options: {Glaze: Sand}, price: 79.00, in_stock: true}

A product without variants gets one ("Default", no options) with its SKU, price and stock. Errors name the
file, the product (index and SKU) and the key: `data/catalog.yml: products[3] (OE-LT-002).variants[1].price:
must be an amount like 79.00, not 'cheap'`.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from bot.catalog.service import MAX_PRICE, ProductInput, VariantInput, slugify, variant_title
from bot.config_files import ConfigError, read_yaml_mapping

PRODUCT_KEYS = ("sku", "title", "price", "currency", "collection", "description", "tags", "handle", "image",
                "in_stock", "variants")
VARIANT_KEYS = ("sku", "title", "options", "price", "in_stock")
MAX_SKU = 64
MAX_TITLE = 255
MAX_TAGS = 50
# Options whose values are also tags, so "in oak" or "in green" finds the product.
TAG_OPTIONS = ("colour", "color", "finish", "material")


class ProductError(Exception):
    """One product of the file is invalid: `key` within it, the reason (a key of bot.catalog.importer.REASONS)."""

    def __init__(self, key: str, reason: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.reason, self.problem = key, reason, problem


@dataclass(frozen=True)
class CatalogEntry:
    """A product of the file, or why it cannot be used."""

    index: int
    label: str  # "products[3] (OE-LT-002)"
    product: Optional[ProductInput]
    error: Optional[ProductError] = None


def load_catalog(path: Path, currency: str) -> List[ProductInput]:
    """Every product of the file; the first problem raises ConfigError naming the file, product and key."""
    products = []
    for entry in read_catalog(path, currency):
        if entry.error is not None:
            where = f"{entry.label}.{entry.error.key}" if entry.error.key else entry.label
            raise ConfigError(path, where, entry.error.problem)
        assert entry.product is not None
        products.append(entry.product)
    return products


def read_catalog(path: Path, currency: str) -> List[CatalogEntry]:
    """Each product of the file, valid or with its problem (SKUs and handles already used above are problems).

    Raises ConfigError when the file itself cannot be used (unreadable, not YAML, no `products` list)."""
    data = read_yaml_mapping(path)
    unknown = sorted(set(data) - {"currency", "products"})
    if unknown:
        raise ConfigError(path, unknown[0], "unknown key (expected: currency, products)")
    file_currency = data.get("currency", currency)
    if not isinstance(file_currency, str) or file_currency.strip().upper() != currency:
        raise ConfigError(path, "currency", f"must be the program's currency {currency}, not {file_currency!r}")
    items = data.get("products")
    if not isinstance(items, list):
        raise ConfigError(path, "products", "is required and must be a list of products")
    entries: List[CatalogEntry] = []
    seen_skus: Dict[str, str] = {}  # product and variant SKUs → where first used
    seen_handles: Dict[str, str] = {}
    for index, item in enumerate(items):
        sku = item.get("sku") if isinstance(item, dict) else None
        label = f"products[{index}]" + (f" ({sku})" if isinstance(sku, str) and sku.strip() else "")
        try:
            product = _product(item, currency)
            _claim(seen_handles, product.handle, label, "handle", "duplicate_product", "handle")
            _claim(seen_skus, product.sku, label, "sku", "duplicate_product", "SKU")
            for position, variant in enumerate(product.variants):
                if variant.sku != product.sku:
                    _claim(seen_skus, variant.sku, label, f"variants[{position}].sku", "duplicate_variant_sku", "SKU")
        except ProductError as error:
            entries.append(CatalogEntry(index, label, None, error))
            continue
        entries.append(CatalogEntry(index, label, product))
    return entries


def _claim(seen: Dict[str, str], value: str, label: str, key: str, reason: str, what: str) -> None:
    first = seen.get(value)
    if first is not None and first != label:
        raise ProductError(key, reason, f"{what} {value} is already used by {first}")
    seen[value] = label


def _product(item: Any, currency: str) -> ProductInput:
    if not isinstance(item, dict):
        raise ProductError("", "bad_value", "must be a mapping (sku, title, price, …)")
    unknown = sorted(str(key) for key in set(item) - set(PRODUCT_KEYS))
    if unknown:
        raise ProductError(unknown[0], "bad_value", f"unknown key (expected: {', '.join(PRODUCT_KEYS)})")
    sku = _sku(item.get("sku"), "sku")
    title = _text(item.get("title"), "title", MAX_TITLE, required=True, reason="missing_title")
    own_currency = item.get("currency", currency)
    if not isinstance(own_currency, str) or own_currency.strip().upper() != currency:
        raise ProductError("currency", "unknown_currency", f"must be the program's currency {currency}, not {own_currency!r}")
    description = _text(item.get("description"), "description", 20000) or ""
    collection = _text(item.get("collection"), "collection", 128)
    tags = _tags(item.get("tags"))
    handle = item.get("handle")
    if handle is None:
        handle = slugify(title)
    elif not isinstance(handle, str) or not handle or slugify(handle) != handle or len(handle) > 255:
        raise ProductError("handle", "bad_value", f"must be lower-case letters, digits and dashes, not {handle!r}")
    if not handle:
        raise ProductError("title", "bad_value", "needs letters or digits (the product's handle is made from it)")
    image = item.get("image", f"/images/{sku.lower()}.jpg")
    if image is not None and (not isinstance(image, str) or not image.startswith(("/", "https://", "http://"))):
        raise ProductError("image", "bad_value", f"must be a path on the store (/images/…) or an http(s) URL, not {image!r}")
    in_stock = _bool(item.get("in_stock", True), "in_stock")
    price = _price(item["price"], "price") if "price" in item else None

    raw_variants = item.get("variants")
    if raw_variants is None:
        if price is None:
            raise ProductError("price", "bad_price", "is required (or give variants with their own prices)")
        variants: Tuple[VariantInput, ...] = (VariantInput(sku, variant_title({}), {}, price, in_stock, 1),)
    else:
        if not isinstance(raw_variants, list) or not raw_variants:
            raise ProductError("variants", "bad_value", "must be a non-empty list of variants")
        if "in_stock" in item:
            raise ProductError("in_stock", "bad_value", "give in_stock on each variant instead")
        variants = tuple(_variant(raw, index, price) for index, raw in enumerate(raw_variants))
        seen: Set[str] = set()
        for index, variant in enumerate(variants):
            if variant.sku in seen:
                raise ProductError(f"variants[{index}].sku", "duplicate_variant_sku", f"SKU {variant.sku} is used twice")
            seen.add(variant.sku)
        names = [tuple(variant.options) for variant in variants]
        if len(set(names)) > 1:
            raise ProductError("variants", "bad_value", "every variant needs the same option names in the same order")
        if len({tuple(variant.options.values()) for variant in variants}) != len(variants):
            raise ProductError("variants", "bad_value", "two variants have the same options")
    return ProductInput(
        sku=sku, handle=handle, title=title, description=description.strip(), currency=currency,
        collection=collection, tags=tuple(with_option_tags(tags, variants)), image_url=image, variants=variants,
    )


def _variant(raw: Any, index: int, product_price: Optional[Decimal]) -> VariantInput:
    where = f"variants[{index}]"
    if not isinstance(raw, dict):
        raise ProductError(where, "bad_value", "must be a mapping (sku, options, price, in_stock)")
    unknown = sorted(str(key) for key in set(raw) - set(VARIANT_KEYS))
    if unknown:
        raise ProductError(f"{where}.{unknown[0]}", "bad_value", f"unknown key (expected: {', '.join(VARIANT_KEYS)})")
    sku = _sku(raw.get("sku"), f"{where}.sku")
    options = raw.get("options", {})
    if not isinstance(options, dict) or not all(
        isinstance(name, str) and name.strip() and isinstance(value, (str, int, float)) and str(value).strip()
        for name, value in options.items()
    ):
        raise ProductError(f"{where}.options", "bad_value", "must map option names to values, e.g. {Size: Large}")
    options = {name.strip(): str(value).strip() for name, value in options.items()}
    if len(options) > 3:
        raise ProductError(f"{where}.options", "bad_value", "at most 3 options (as on Shopify)")
    if "price" in raw:
        price = _price(raw["price"], f"{where}.price")
    elif product_price is not None:
        price = product_price
    else:
        raise ProductError(f"{where}.price", "bad_price", "is required (or give the product a price)")
    title = _text(raw.get("title"), f"{where}.title", MAX_TITLE) or variant_title(options)
    return VariantInput(sku, title, options, price, _bool(raw.get("in_stock", True), f"{where}.in_stock"), index + 1)


def with_option_tags(tags: List[str], variants: Tuple[VariantInput, ...]) -> List[str]:
    """The tags, then the values of colour/finish/material options as tags too (each once)."""
    result = list(dict.fromkeys(tags))
    for variant in variants:
        for name, value in variant.options.items():
            tag = value.strip().lower()
            if name.strip().lower() in TAG_OPTIONS and tag and tag not in result:
                result.append(tag)
    return result


def parse_price(raw: Any) -> Decimal:
    """An amount ≥ 0 with at most two decimals; ValueError("negative") or ValueError("bad") otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
        raise ValueError("bad")
    text = str(raw).strip().replace(",", "")
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise ValueError("bad") from None
    if not price.is_finite():
        raise ValueError("bad")
    if price < 0:
        raise ValueError("negative")
    if price != price.quantize(Decimal("0.01")) or price > MAX_PRICE:
        raise ValueError("bad")
    return price.quantize(Decimal("0.01"))


def _price(raw: Any, key: str) -> Decimal:
    try:
        return parse_price(raw)
    except ValueError as error:
        if str(error) == "negative":
            raise ProductError(key, "negative_price", f"must not be negative, not {raw!r}") from None
        raise ProductError(key, "bad_price", f"must be an amount like 79.00 (at most {MAX_PRICE:,}), not {raw!r}") from None


def _sku(raw: Any, key: str) -> str:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise ProductError(key, "missing_sku", "is required and must be non-empty text")
    if len(raw.strip()) > MAX_SKU or any(char.isspace() for char in raw.strip()):
        raise ProductError(key, "bad_value", f"must be at most {MAX_SKU} characters without spaces, not {raw!r}")
    return raw.strip()


def _text(raw: Any, key: str, limit: int, required: bool = False, reason: str = "bad_value") -> Optional[str]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ProductError(key, reason, "is required and must be non-empty text")
        return None
    if not isinstance(raw, str):
        raise ProductError(key, "bad_value", f"must be text, not {raw!r}")
    if len(raw.strip()) > limit:
        raise ProductError(key, "bad_value", f"must be at most {limit:,} characters")
    return raw.strip()


def _tags(raw: Any) -> List[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(tag, str) and tag.strip() for tag in raw):
        raise ProductError("tags", "bad_value", "must be a list of words, e.g. [chair, oak, small-space]")
    if len(raw) > MAX_TAGS:
        raise ProductError("tags", "bad_value", f"at most {MAX_TAGS} tags")
    return [tag.strip().lower() for tag in raw]


def _bool(raw: Any, key: str) -> bool:
    if not isinstance(raw, bool):
        raise ProductError(key, "bad_value", f"must be true or false, not {raw!r}")
    return raw
