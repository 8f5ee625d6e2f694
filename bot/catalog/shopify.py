"""Shopify's product export (Products → Export, CSV) → ProductInput, one product per Handle.

One product spans consecutive rows with the same Handle: the first carries the product (Title, Body (HTML),
Vendor, Type, Tags, Published, Status, Image Src, Option names), each row a variant (Option values, Variant
SKU, Variant Price, Variant Inventory Qty); rows with only an image are extra images and ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from bot.catalog.loader import MAX_SKU, MAX_TITLE, ProductError, parse_price, with_option_tags
from bot.catalog.service import ProductInput, VariantInput, slugify, variant_title
from bot.shared.csv_stream import CsvFile, CsvRecord

COLUMNS: Dict[str, Tuple[str, ...]] = {
    "handle": ("Handle",),
    "title": ("Title",),
    "body": ("Body (HTML)", "Body HTML", "Body"),
    "vendor": ("Vendor",),
    "type": ("Type", "Product Type"),
    "tags": ("Tags",),
    "published": ("Published",),
    "option1_name": ("Option1 Name",),
    "option1_value": ("Option1 Value",),
    "option2_name": ("Option2 Name",),
    "option2_value": ("Option2 Value",),
    "option3_name": ("Option3 Name",),
    "option3_value": ("Option3 Value",),
    "sku": ("Variant SKU",),
    "price": ("Variant Price",),
    "quantity": ("Variant Inventory Qty",),
    "tracker": ("Variant Inventory Tracker",),
    "policy": ("Variant Inventory Policy",),
    "image": ("Image Src",),
    "status": ("Status",),
    "collection": ("Collection", "Custom Collections"),
    "currency": ("Currency", "Variant Price Currency"),
}
REQUIRED = ("handle", "title", "price")
_VARIANT_FIELDS = ("sku", "price", "option1_value", "option2_value", "option3_value", "quantity")
_DEFAULT_OPTION = ("title", "default title")
MAX_DESCRIPTION = 20000


@dataclass(frozen=True)
class ShopifyProduct:
    """One Handle's rows: the product, None when it is a draft or archived (skipped), or why it is refused."""

    handle: str
    where: str  # "line 4" or "lines 4-7"
    product: Optional[ProductInput]
    error: Optional[ProductError] = None
    error_line: int = 0
    rows: int = 0  # CSV records of this handle

    @property
    def skipped(self) -> bool:
        return self.product is None and self.error is None


class _Text(HTMLParser):
    """Text of an HTML fragment: tags dropped (script and style with their content), blocks on new lines."""

    BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
              "blockquote"}
    HIDDEN = {"script", "style", "template", "noscript", "iframe", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: List[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def strip_html(html: str) -> str:
    """Plain text of Shopify's Body (HTML): no tags, entities decoded, paragraphs on their own lines."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in ("true", "yes", "1", "y")


class _Group:
    def __init__(self, handle: str, record: CsvRecord) -> None:
        self.handle = handle
        self.rows: List[Tuple[int, List[str]]] = []
        self.first_line = record.first_line
        self.last_line = record.last_line
        self.broken = 0  # the first line of a row of this product that could not be read

    @property
    def where(self) -> str:
        first, last = self.first_line, self.last_line
        return f"line {first}" if first == last else f"lines {first}-{last}"


def read_products(source: CsvFile, columns: Dict[str, int], currency: str,
                  malformed: Callable[[CsvRecord], None]) -> Iterator[ShopifyProduct]:
    """The products of an export, one per Handle, in file order; rows that are not CSV go to `malformed`."""
    seen_handles: Dict[str, str] = {}
    seen_skus: Dict[str, str] = {}
    group: Optional[_Group] = None
    for record in source.records():
        if record.fields is None:
            malformed(record)
            raw_handle = record.raw[columns["handle"]].strip() if record.raw and len(record.raw) > columns["handle"] else None
            if group is not None and raw_handle in (group.handle, None):
                group.broken = group.broken or record.first_line  # the product would lack that row's variant
            continue
        handle = record.fields[columns["handle"]].strip()
        if group is not None and handle == group.handle:
            group.rows.append((record.first_line, record.fields))
            group.last_line = record.last_line
            continue
        if group is not None:
            yield _product(group, columns, currency, seen_handles, seen_skus)
        group = _Group(handle, record)
        group.rows.append((record.first_line, record.fields))
    if group is not None:
        yield _product(group, columns, currency, seen_handles, seen_skus)


def _product(group: _Group, columns: Dict[str, int], currency: str, seen_handles: Dict[str, str],
             seen_skus: Dict[str, str]) -> ShopifyProduct:
    line = group.first_line
    try:
        if group.broken:
            line = group.broken
            raise ProductError("", "malformed_row", "a row of this product cannot be read, so none of it is imported")
        product = _parse(group, columns, currency)
        if product is None:
            return ShopifyProduct(group.handle, group.where, None, rows=len(group.rows))
        first = seen_handles.get(product.handle)
        if first is not None:
            raise ProductError("Handle", "duplicate_product",
                               f"handle {product.handle!r} was already used at {first} (a product's rows must be together)")
        for (row_line, _), variant in zip(_variant_rows(group, columns), product.variants):
            first = seen_skus.get(variant.sku)
            if first is not None:
                line = row_line
                raise ProductError("Variant SKU", "duplicate_variant_sku", f"SKU {variant.sku} was already used at {first}")
        seen_handles[product.handle] = group.where
        for (row_line, _), variant in zip(_variant_rows(group, columns), product.variants):
            seen_skus[variant.sku] = f"line {row_line}"
        return ShopifyProduct(group.handle, group.where, product, rows=len(group.rows))
    except _RowProblem as problem:
        return ShopifyProduct(group.handle, group.where, None, problem.error, problem.line, len(group.rows))
    except ProductError as error:
        return ShopifyProduct(group.handle, group.where, None, error, line, len(group.rows))


class _RowProblem(Exception):
    def __init__(self, line: int, error: ProductError) -> None:
        super().__init__(error.problem)
        self.line, self.error = line, error


def _variant_rows(group: _Group, columns: Dict[str, int]) -> List[Tuple[int, List[str]]]:
    rows = [
        (line, fields) for line, fields in group.rows
        if any(fields[columns[key]].strip() for key in _VARIANT_FIELDS if key in columns)
    ]
    return rows


def _parse(group: _Group, columns: Dict[str, int], currency: str) -> Optional[ProductInput]:
    first_line, first = group.rows[0]

    def get(key: str, fields: List[str] = first) -> str:
        return fields[columns[key]].strip() if key in columns else ""

    handle = group.handle
    if not handle:
        raise ProductError("Handle", "missing_sku", "the Handle is empty")
    if slugify(handle) != handle.lower() or len(handle) > 255:
        raise ProductError("Handle", "bad_value", f"{handle[:80]!r} is not a Shopify handle (letters, digits, dashes)")
    handle = handle.lower()
    title = get("title")
    if not title:
        raise ProductError("Title", "missing_title", "the product's first row has no Title")
    if len(title) > MAX_TITLE:
        raise ProductError("Title", "bad_value", f"longer than {MAX_TITLE} characters")
    status = get("status").lower()
    if status in ("draft", "archived") or (not status and "published" in columns and not _truthy(get("published"))):
        return None
    own_currency = get("currency").upper()
    if own_currency and own_currency != currency:
        raise ProductError("Currency", "unknown_currency", f"{own_currency!r} is not the store's currency {currency}")

    option_names = [get(f"option{n}_name") for n in (1, 2, 3)]
    variants: List[VariantInput] = []
    skus: Dict[str, int] = {}
    for position, (line, fields) in enumerate(_variant_rows(group, columns), start=1):
        try:
            variants.append(_variant(fields, columns, option_names, handle, position, currency))
        except ProductError as error:
            raise _RowProblem(line, error) from None
        sku = variants[-1].sku
        if sku in skus:
            raise _RowProblem(line, ProductError("Variant SKU", "duplicate_variant_sku",
                                                 f"SKU {sku} is already used at line {skus[sku]}"))
        skus[sku] = line
    if not variants:
        raise ProductError("Variant Price", "bad_price", "the product has no variant row (no Variant Price)")
    if len({tuple(variant.options.values()) for variant in variants}) != len(variants):
        raise ProductError("Option1 Value", "bad_value", "two variants have the same options")

    product_type = get("type")
    tags = [tag.strip().lower() for tag in get("tags").split(",") if tag.strip()]
    if product_type and product_type.lower() not in tags:
        tags.insert(0, product_type.lower())
    collection = get("collection").split(",")[0].strip() or product_type or None
    image = get("image") or next((get("image", fields) for _, fields in group.rows if get("image", fields)), "")
    if image and not image.startswith(("https://", "http://", "/")):
        image = ""
    description = strip_html(get("body"))[:MAX_DESCRIPTION]
    return ProductInput(
        sku=variants[0].sku, handle=handle, title=title, description=description, currency=currency,
        collection=(collection or None) and collection[:128], tags=tuple(with_option_tags(tags, tuple(variants))[:50]),
        image_url=image or None, variants=tuple(variants), match_on="handle",
    )


def _variant(fields: List[str], columns: Dict[str, int], option_names: List[str], handle: str, position: int,
             currency: str) -> VariantInput:
    def get(key: str) -> str:
        return fields[columns[key]].strip() if key in columns else ""

    options: Dict[str, str] = {}
    for number, name in enumerate(option_names, start=1):
        value = get(f"option{number}_value")
        if name and value and not (name.lower() == _DEFAULT_OPTION[0] and value.lower() == _DEFAULT_OPTION[1]):
            options[name] = value
    raw_price = get("price")
    if not raw_price:
        raise ProductError("Variant Price", "bad_price", "the Variant Price is empty")
    try:
        price = parse_price(raw_price.lstrip("$€£"))
    except ValueError as error:
        if str(error) == "negative":
            raise ProductError("Variant Price", "negative_price", f"{raw_price!r} is negative") from None
        raise ProductError("Variant Price", "bad_price", f"{raw_price!r} is not an amount") from None
    sku = get("sku").lstrip("'")
    if not sku:  # Shopify allows variants without SKU: one made from the handle and the options
        sku = "-".join([handle] + [slugify(value) for value in options.values()])[:MAX_SKU]
    if len(sku) > MAX_SKU or any(char.isspace() for char in sku):
        raise ProductError("Variant SKU", "bad_value", f"{sku[:80]!r} is longer than {MAX_SKU} characters or has spaces")
    quantity = get("quantity")
    in_stock = True
    if get("tracker") or ("tracker" not in columns and quantity):
        if get("policy").lower() != "continue":
            try:
                in_stock = int(quantity or "0") > 0
            except ValueError:
                raise ProductError("Variant Inventory Qty", "bad_value", f"{quantity!r} is not a whole number") from None
    return VariantInput(sku, variant_title(options), options, price, in_stock, position)
