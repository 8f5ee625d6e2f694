"""`python -m bot catalog …`: the store's product catalog."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _catalog_import(args: argparse.Namespace) -> int:
    from bot.catalog.importer import catalog_import_command
    from bot.db import get_database
    from bot.loyalty.program import get_program
    from bot.shop import get_shop

    program, shop = get_program(), get_shop()
    database = get_database()
    database.create_schema()
    return catalog_import_command(args.file, database=database, currency=program.currency, store_url=shop.store_url,
                                  dry_run=args.dry_run)


def add_catalog_commands(commands: Any) -> None:
    catalog = commands.add_parser("catalog", help="the product catalog").add_subparsers(
        dest="catalog_command", required=True
    )
    load = catalog.add_parser(
        "import", help="add or update products from a catalog file (.yml) or a Shopify product export (.csv)",
        description="Products are matched by SKU (catalog file) or Handle (Shopify export), so running it again "
                    "changes nothing. Exit code 0: products imported (rejected ones are listed with their place and "
                    "reason); 1: nothing could be imported; 2: the file cannot be used, nothing was imported.",
    )
    load.add_argument("file", type=Path, help="data/catalog.yml or a Shopify products_export.csv")
    load.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
    load.set_defaults(handler=_catalog_import)
