"""The catalog (bot/catalog): data/catalog.yml and its validation, the Shopify product-export importer, the
upsert every load goes through, the demo seed and `python -m bot catalog import`, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Dict, List

import pytest
from sqlalchemy import func, select, text

from bot.catalog import importer, load_catalog
from bot.catalog.importer import catalog_import_command, format_report, import_catalog
from bot.catalog.shopify import strip_html
from bot.cli import main
from bot.config_files import ConfigError
from bot.db import Database
from bot.demo import seed_demo
from bot.shared.csv_stream import ImportFileError
from bot.models.catalog import Product, ProductVariant
from bot.settings import PROJECT_ROOT

CATALOG = PROJECT_ROOT / "data" / "catalog.yml"
FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "shopify"
EXPORT = FIXTURES / "products_export.csv"
BROKEN = FIXTURES / "products_export_broken.csv"
STORE = "https://oak-and-ember.example"

# The demo shop's first twelve products, as tests, the demo page and data/program.yml's free lamp know them.
ORIGINAL = {
    "OE-CH-001": ("Linden lounge chair", "349.00"), "OE-CH-002": ("Ash dining chair (set of 2)", "279.00"),
    "OE-SO-001": ("Harbour 3-seat sofa", "1290.00"), "OE-TB-001": ("Fold oak side table", "119.00"),
    "OE-TB-002": ("Long walnut dining table", "1450.00"), "OE-DK-001": ("Rise standing desk", "389.00"),
    "OE-DK-002": ("Nook wall desk", "169.00"), "OE-OC-001": ("Task office chair", "259.00"),
    "OE-LT-001": ("Ember floor lamp", "149.00"), "OE-LT-002": ("Pebble table lamp", "79.00"),
    "OE-TX-001": ("Heavy linen throw", "89.00"), "OE-ST-001": ("Stack shelving unit", "229.00"),
}


def run(database: Database, path: Path, dry_run: bool = False) -> importer.CatalogReport:
    return import_catalog(database, path, currency="USD", store_url=STORE, dry_run=dry_run)


def products(database: Database) -> Dict[str, Product]:
    with database.session() as session:
        rows = session.execute(select(Product)).scalars().all()
        for product in rows:
            product.variants  # loaded while the session is open
        return {product.handle: product for product in rows}


def count(database: Database, model) -> int:  # type: ignore[no-untyped-def]
    with database.session() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def edited_csv(tmp_path: Path, source: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, data = rows[0], rows[1:]
    edit(header, data)
    path = tmp_path / source.name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header] + data)
    return path


def write_yaml(tmp_path: Path, body: str, name: str = "catalog.yml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


# --- data/catalog.yml --------------------------------------------------------------------------------


def test_the_demo_catalog_has_about_forty_products_in_five_collections() -> None:
    catalog = load_catalog(CATALOG, "USD")
    assert 38 <= len(catalog) <= 45
    assert {product.collection for product in catalog} == {"Living room", "Dining", "Home office", "Lighting", "Bedroom"}
    by_sku = {product.sku: product for product in catalog}
    for sku, (title, price) in ORIGINAL.items():
        assert (by_sku[sku].title, by_sku[sku].price) == (title, Decimal(price))
    assert [product.sku for product in catalog[:12]] == list(ORIGINAL)  # the demo page shows the first 12
    out_of_stock = [product.sku for product in catalog if not product.in_stock]
    assert 2 <= len(out_of_stock) <= 3 and "OE-ST-001" in out_of_stock
    assert sum(len(product.variants) > 1 for product in catalog) >= 5
    assert min(product.price for product in catalog) <= 30 and 1400 <= max(product.price for product in catalog) <= 1500
    tags = {tag for product in catalog for tag in product.tags}
    for tag in ("chair", "sofa", "table", "desk", "lamp", "bed", "storage", "textile", "rug", "oak", "walnut", "ash",
                "pine", "linen", "wool", "leather", "brass", "ceramic", "mesh", "velvet", "small-space", "outdoor",
                "ergonomic", "kids-safe"):
        assert tag in tags, tag
    assert all(product.description and product.description.endswith(".") for product in catalog)
    lamp = by_sku["OE-LT-002"]
    assert [(v.sku, v.options, v.in_stock) for v in lamp.variants][2] == ("OE-LT-002-CHR", {"Colour": "Charcoal"}, False)
    assert {"sand", "moss", "charcoal"} <= set(lamp.tags)  # colour options are tags too


def test_the_old_demo_catalog_file_is_gone() -> None:
    assert not (PROJECT_ROOT / "data" / "demo" / "catalog.yml").exists()


GOOD = """\
products:
  - {sku: A-1, title: Alpha chair, price: 10.00, tags: [chair]}
  - sku: B-1
    title: Beta lamp
    variants:
      - {sku: B-1-S, options: {Size: Small}, price: 20.00}
      - {sku: B-1-L, options: {Size: Large}, price: 30.00, in_stock: false}
"""


@pytest.mark.parametrize(
    "body, key, problem",
    [
        (GOOD.replace("title: Alpha chair, ", ""), "products[0] (A-1).title", "is required"),
        (GOOD.replace("price: 10.00", "price: cheap"), "products[0] (A-1).price", "must be an amount like 79.00 (at most 1,000,000), not 'cheap'"),
        (GOOD.replace("price: 10.00", "price: 10.001"), "products[0] (A-1).price", "must be an amount"),
        (GOOD.replace("price: 30.00", "price: -30.00"), "products[1] (B-1).variants[1].price", "must not be negative"),
        (GOOD.replace("B-1-L", "B-1-S"), "products[1] (B-1).variants[1].sku", "SKU B-1-S is used twice"),
        (GOOD.replace("B-1-S", "A-1"), "products[1] (B-1).variants[0].sku", "SKU A-1 is already used by products[0] (A-1)"),
        (GOOD.replace("sku: B-1\n", "sku: A-1\n"), "products[1] (A-1).sku", "already used by products[0] (A-1)"),
        (GOOD.replace("tags: [chair]", "colour: red"), "products[0] (A-1).colour", "unknown key"),
        (GOOD.replace("tags: [chair]", "currency: EUR"), "products[0] (A-1).currency", "must be the program's currency USD"),
        (GOOD.replace("tags: [chair]", "tags: chair"), "products[0] (A-1).tags", "must be a list of words"),
        (GOOD.replace("{Size: Large}", "{Colour: Red}"), "products[1] (B-1).variants", "the same option names"),
        (GOOD.replace("in_stock: false", "in_stock: maybe"), "products[1] (B-1).variants[1].in_stock", "true or false"),
        (GOOD.replace("{sku: A-1, title: Alpha chair, price: 10.00, tags: [chair]}", "{title: Alpha chair, price: 1}"),
         "products[0].sku", "is required"),
        (GOOD.replace("{sku: A-1, title: Alpha chair, price: 10.00, tags: [chair]}", "{sku: A-1, title: Alpha chair}"),
         "products[0] (A-1).price", "is required (or give variants"),
        ("products: {sku: A-1}\n", "products", "must be a list of products"),
        ("currency: EUR\n" + GOOD, "currency", "must be the program's currency USD"),
        ("product:\n" + GOOD[len("products:\n"):], "product", "unknown key"),
    ],
)
def test_catalog_file_errors_name_the_file_the_product_and_the_key(tmp_path, body, key, problem) -> None:
    path = write_yaml(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_catalog(path, "USD")
    assert caught.value.path == path and caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_a_valid_catalog_file_loads_with_defaults(tmp_path) -> None:
    alpha, beta = load_catalog(write_yaml(tmp_path, GOOD), "USD")
    assert (alpha.handle, alpha.image_url, alpha.price, alpha.in_stock) == ("alpha-chair", "/images/a-1.jpg", Decimal("10.00"), True)
    assert [(v.sku, v.title, v.options) for v in alpha.variants] == [("A-1", "Default", {})]
    assert (beta.price, beta.in_stock) == (Decimal("20.00"), True)
    assert [(v.sku, v.title, v.position, v.in_stock) for v in beta.variants] == [
        ("B-1-S", "Small", 1, True), ("B-1-L", "Large", 2, False)]


def test_unreadable_or_broken_yaml_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_catalog(tmp_path / "missing.yml", "USD")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(write_yaml(tmp_path, "products: [\n"), "USD")


# --- the demo seed -----------------------------------------------------------------------------------


def test_the_demo_seed_loads_the_catalog_through_the_upsert(any_db: Database, program, tmp_path, clock) -> None:
    with any_db.session(write=True) as session:
        report = seed_demo(session, program, STORE)
    assert (report.products_added, report.products_updated, report.customers_added) == (41, 0, 4)
    assert count(any_db, Product) == 41
    lamp = products(any_db)["pebble-table-lamp"]
    assert (lamp.sku, lamp.title, lamp.price, lamp.in_stock, lamp.currency) == ("OE-LT-002", "Pebble table lamp", Decimal("79.00"), True, "USD")
    assert (lamp.url, lamp.image_url) == (f"{STORE}/products/pebble-table-lamp", f"{STORE}/images/oe-lt-002.jpg")
    assert [variant.sku for variant in lamp.variants] == ["OE-LT-002-SND", "OE-LT-002-MOS", "OE-LT-002-CHR"]
    shelving = products(any_db)["stack-shelving-unit"]
    assert shelving.in_stock is False and [(v.sku, v.title, v.in_stock) for v in shelving.variants] == [("OE-ST-001", "Default", False)]

    with any_db.session(write=True) as session:
        again = seed_demo(session, program, STORE)
    assert (again.products_added, again.products_updated, again.customers_added, again.customers_existing) == (0, 0, 0, 4)

    edited = tmp_path / "catalog.yml"
    edited.write_text(CATALOG.read_text(encoding="utf-8").replace("Fold oak side table, price: 119.00", "Fold oak side table, price: 109.00"), encoding="utf-8")
    clock.advance(days=1)
    with any_db.session(write=True) as session:
        changed = seed_demo(session, program, STORE, catalog_file=edited)
    assert (changed.products_added, changed.products_updated) == (0, 1)
    table = products(any_db)["fold-oak-side-table"]
    assert table.price == Decimal("109.00") and table.variants[0].price == Decimal("109.00")
    assert table.updated_at == clock.current and lamp.updated_at == clock.current - timedelta(days=1)


# --- Shopify product export --------------------------------------------------------------------------


def test_strip_html_keeps_the_text_only() -> None:
    assert strip_html('<p>Solid <strong>oak</strong> &amp; brass</p><p>45&nbsp;cm</p>') == "Solid oak & brass\n45 cm"
    assert strip_html('<script>alert("x")</script><style>p{}</style>Safe<br/>text') == "Safe\ntext"
    assert strip_html("<ul><li>One</li><li>Two</li></ul>") == "One\nTwo"
    assert strip_html("Plain text, 5 < 6 and &lt;b&gt; is not a tag") == "Plain text, 5 < 6 and <b> is not a tag"
    assert strip_html("<p>unclosed <b>bold") == "unclosed bold"
    assert strip_html("") == ""


def test_shopify_export_imports_products_with_their_variants(any_db: Database) -> None:
    report = run(any_db, EXPORT)
    assert (report.rows, report.products, report.added, report.updated, report.unchanged, report.skipped) == (10, 5, 4, 0, 0, 1)
    assert report.rejected == 0 and report.kind == "Shopify product export"
    stored = products(any_db)
    assert set(stored) == {"hollis-stool", "marlow-linen-cushion", "ferro-candlestick", "harbour-sofa-cover"}

    stool = stored["hollis-stool"]
    assert (stool.sku, stool.title, stool.price, stool.in_stock, stool.currency) == ("HS-OAK-S", "Hollis stool", Decimal("129.00"), True, "USD")
    assert stool.url == f"{STORE}/products/hollis-stool"
    assert stool.image_url == "https://cdn.shopify.com/s/files/1/0000/0001/products/hollis.jpg"
    assert (stool.collection, stool.tags) == ("Stool", ["stool", "oak", "walnut", "small-space", "seating"])
    assert stool.description == (
        "A three-legged stool turned from solid oak or walnut & finished with hard-wax oil.\n"
        "Seat height 45 cm (small) or 65 cm (large)\nAssembled"
    )
    assert [(v.sku, v.title, v.options, v.price, v.in_stock, v.position) for v in stool.variants] == [
        ("HS-OAK-S", "Oak / Small", {"Finish": "Oak", "Size": "Small"}, Decimal("129.00"), True, 1),
        ("HS-OAK-L", "Oak / Large", {"Finish": "Oak", "Size": "Large"}, Decimal("149.00"), False, 2),
        ("HS-WAL-S", "Walnut / Small", {"Finish": "Walnut", "Size": "Small"}, Decimal("159.00"), True, 3),
        ("HS-WAL-L", "Walnut / Large", {"Finish": "Walnut", "Size": "Large"}, Decimal("179.00"), True, 4),
    ]
    cushion = stored["marlow-linen-cushion"]
    assert [(v.sku, v.title, v.options) for v in cushion.variants] == [("MC-001", "Default", {})]
    assert cushion.tags == ["cushion", "textile", "linen", "small-space"] and cushion.in_stock is True  # untracked stock
    candlestick = stored["ferro-candlestick"]
    assert candlestick.in_stock is False and candlestick.description == "Solid brass, hand-polished." and candlestick.image_url is None
    cover = stored["harbour-sofa-cover"]  # Sage: 0 in stock but sold when out ("continue")
    assert cover.in_stock and [v.in_stock for v in cover.variants] == [True, True]
    assert (cover.tags, cover.collection) == (["textile", "natural", "sage"], "Textile")
    assert count(any_db, ProductVariant) == 8


def test_importing_the_same_export_again_changes_nothing(any_db: Database, clock) -> None:
    run(any_db, EXPORT)
    before = {handle: product.updated_at for handle, product in products(any_db).items()}
    clock.advance(hours=1)
    again = run(any_db, EXPORT)
    assert (again.added, again.updated, again.unchanged, again.skipped, again.rejected) == (0, 0, 4, 1, 0)
    assert "10 rows, 5 products: 0 added, 0 updated, 4 unchanged" in format_report(again)
    assert {handle: product.updated_at for handle, product in products(any_db).items()} == before
    assert count(any_db, ProductVariant) == 8


def test_a_changed_price_and_variants_update_the_product(any_db: Database, tmp_path, clock) -> None:
    run(any_db, EXPORT)
    clock.advance(days=2)

    def edit(header: List[str], rows: List[List[str]]) -> None:
        price, sku = header.index("Variant Price"), header.index("Variant SKU")
        for row in rows:
            if row[sku] == "HS-OAK-S":
                row[price] = "119.00"
        rows[:] = [row for row in rows if row[sku] != "HC-SGE"]  # a colour discontinued

    report = run(any_db, edited_csv(tmp_path, EXPORT, edit))
    assert (report.added, report.updated, report.unchanged) == (0, 2, 2)
    stored = products(any_db)
    assert stored["hollis-stool"].price == Decimal("119.00") and stored["hollis-stool"].variants[0].price == Decimal("119.00")
    assert stored["hollis-stool"].updated_at == clock.current
    assert [v.sku for v in stored["harbour-sofa-cover"].variants] == ["HC-NAT"]
    assert "sage" not in stored["harbour-sofa-cover"].tags
    assert stored["marlow-linen-cushion"].updated_at == clock.current - timedelta(days=2)
    assert count(any_db, ProductVariant) == 7


def test_rejected_rows_are_reported_with_place_and_reason(any_db: Database) -> None:
    report = run(any_db, BROKEN)
    assert (report.added, report.rejected) == (2, 6)
    assert set(products(any_db)) == {"good-lamp", "good-vase"}
    assert products(any_db)["good-vase"].in_stock is True  # empty quantity, not tracked
    assert [str(rejection) for rejection in report.rejections] == [
        "products_export_broken.csv line 3 (handle no-title): missing title: Title: the product's first row has no Title",
        "products_export_broken.csv lines 4-5 (handle cheap-chair): bad price: line 5, Variant Price: 'abc' is not an amount",
        "products_export_broken.csv line 6 (handle refund-rug): negative price: Variant Price: '-5.00' is negative",
        "products_export_broken.csv line 7 (handle copy-lamp): duplicate variant SKU: Variant SKU: SKU GL-001 was already used at line 2",
        "products_export_broken.csv line 8 (handle euro-table): unknown currency: Currency: 'EUR' is not the store's currency USD",
        "products_export_broken.csv line 9: malformed row: has 10 fields, the header has 37",
    ]
    summary = format_report(report)
    assert "2 added, 0 updated, 0 unchanged" in summary and "rejected: 6" in summary and "  negative price: 1" in summary


def test_a_broken_row_inside_a_product_rejects_the_whole_product(any_db: Database, tmp_path) -> None:
    def edit(header: List[str], rows: List[List[str]]) -> None:
        rows[1] = rows[1][:5]  # the stool's second variant row, cut short

    report = run(any_db, edited_csv(tmp_path, EXPORT, edit))
    assert "hollis-stool" not in products(any_db) and report.added == 3
    assert [str(rejection) for rejection in report.rejections] == [
        "products_export.csv lines 2-7 (handle hollis-stool): malformed row: line 4: a row of this product cannot be "
        "read, so none of it is imported",
        "products_export.csv line 4: malformed row: has 5 fields, the header has 36",
    ]


def test_a_variant_sku_of_another_product_in_the_store_is_refused(any_db: Database, tmp_path) -> None:
    run(any_db, EXPORT)
    path = write_yaml(tmp_path, "products:\n  - sku: NEW-1\n    title: Copy stool\n    variants:\n"
                                "      - {sku: HS-WAL-L, options: {Size: Large}, price: 5.00}\n"
                                "  - {sku: NEW-2, title: Fresh mug, price: 12.00}\n")
    report = run(any_db, path)
    assert (report.added, report.rejected) == (1, 1)
    assert str(report.rejections[0]) == (
        "catalog.yml products[0] (NEW-1): duplicate variant SKU: variant SKU HS-WAL-L belongs to another product ('Hollis stool')")
    assert [v.sku for v in products(any_db)["hollis-stool"].variants][-1] == "HS-WAL-L"


def test_a_catalog_file_import_rejects_bad_products_and_keeps_the_rest(any_db: Database, tmp_path) -> None:
    path = write_yaml(tmp_path, GOOD.replace("price: 10.00", "price: -1"))
    report = run(any_db, path)
    assert (report.products, report.added, report.rejected) == (2, 1, 1)
    assert str(report.rejections[0]) == "catalog.yml products[0] (A-1): negative price: price: must not be negative, not -1"
    assert set(products(any_db)) == {"beta-lamp"}


def test_dry_run_writes_nothing(any_db: Database) -> None:
    report = run(any_db, EXPORT, dry_run=True)
    assert (report.added, report.updated, report.unchanged, report.skipped) == (4, 0, 0, 1)
    assert "dry run: nothing was written" in format_report(report)
    assert count(any_db, Product) == 0 and count(any_db, ProductVariant) == 0
    run(any_db, EXPORT)
    assert (run(any_db, CATALOG, dry_run=True).added, count(any_db, Product)) == (41, 4)


def test_many_products_go_in_several_batches(any_db: Database, monkeypatch) -> None:
    monkeypatch.setattr(importer, "BATCH_PRODUCTS", 3)
    assert run(any_db, CATALOG).added == 41
    assert run(any_db, CATALOG).unchanged == 41
    variants = sum(len(product.variants) for product in load_catalog(CATALOG, "USD"))
    assert count(any_db, Product) == 41 and count(any_db, ProductVariant) == variants == 65


def test_files_that_cannot_be_imported(any_db: Database, tmp_path) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text("Customer ID,First Name,Last Name,Email\n1,Ann,Lee,ann@example.com\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="missing columns Handle, Title, Variant Price.*Shopify customer export"):
        run(any_db, customers)
    with pytest.raises(ImportFileError, match="cannot be read"):
        run(any_db, tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="give a catalog file"):
        run(any_db, write_yaml(tmp_path, "x", "catalog.txt"))
    with pytest.raises(ImportFileError, match="products: is required"):
        run(any_db, write_yaml(tmp_path, "currency: USD\n"))


def test_products_already_in_the_store_get_a_default_variant_from_the_migration(any_db: Database) -> None:
    from alembic import command
    from alembic.config import Config

    from bot.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with any_db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0006")
    with any_db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO products (sku, title, description, price, currency, url, tags, in_stock) "
            "VALUES ('OLD-1', 'Old lamp', '', 4900, 'USD', 'https://x.example/products/old', '[]', false)"))
    any_db.create_schema()
    old = products(any_db)[None]
    assert (old.price, old.in_stock, old.updated_at is not None) == (Decimal("49.00"), False, True)
    assert [(v.sku, v.title, v.options, v.price, v.in_stock) for v in old.variants] == [
        ("OLD-1", "Default", {}, Decimal("49.00"), False)]


# --- python -m bot catalog import --------------------------------------------------------------------


def test_cli_imports_reports_and_is_idempotent(environment, capsys) -> None:
    assert main(["catalog", "import", str(EXPORT)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("[catalog] products_export.csv (Shopify product export): 10 rows, 5 products: "
                          "4 added, 0 updated, 0 unchanged, 1 skipped (draft or archived)\nrejected: none")
    assert "import" in err  # the progress bar
    assert main(["catalog", "import", str(EXPORT)]) == 0
    assert "0 added, 0 updated, 4 unchanged" in capsys.readouterr().out

    assert main(["catalog", "import", "--dry-run", str(CATALOG)]) == 0
    out = capsys.readouterr().out
    assert "catalog.yml (catalog file): 41 products: 41 added, 0 updated, 0 unchanged" in out and "dry run" in out
    assert main(["catalog", "import", str(CATALOG)]) == 0
    assert "41 added" in capsys.readouterr().out
    assert main(["seed", "--demo"]) == 0
    assert "0 products added, 4 customers added" in capsys.readouterr().out


def test_cli_exit_codes(environment, tmp_path, capsys) -> None:
    assert main(["catalog", "import", str(BROKEN)]) == 0  # some products went in; the rest are listed
    assert "rejected: 6" in capsys.readouterr().out

    def reject_all(header: List[str], rows: List[List[str]]) -> None:
        for row in rows:
            row[header.index("Variant Price")] = "free"

    assert main(["catalog", "import", str(edited_csv(tmp_path, EXPORT, reject_all))]) == 1
    out, err = capsys.readouterr()
    assert "0 added" in out and "bad price: 4" in out and "nothing was imported" in err

    assert main(["catalog", "import", str(tmp_path / "nope.csv")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["catalog", "import", str(empty)]) == 2
    assert "the file is empty" in capsys.readouterr().err
    assert main(["catalog", "import", str(write_yaml(tmp_path, "products: []\n"))]) == 1
    assert "the file lists no products" in capsys.readouterr().err


def test_command_output_goes_to_the_given_streams(sqlite_db: Database, tmp_path) -> None:
    copy = shutil.copy(EXPORT, tmp_path / "export.csv")
    out, err = io.StringIO(), io.StringIO()
    assert catalog_import_command(Path(copy), database=sqlite_db, currency="USD", store_url=STORE, out=out, err=err) == 0
    assert out.getvalue().startswith("[catalog] export.csv (Shopify product export)")
