"""`python -m bot catalog import FILE`: a catalog file (.yml) or a Shopify product export (.csv) into the store.

Same house rules as the history importer (bot/history_import.py): the CSV is streamed with a progress bar on
stderr, products are written in short transactions (BATCH_PRODUCTS at a time) each in its own SAVEPOINT, a
product the store cannot take is rejected alone with its place and reason, and running the same file again
changes nothing ("0 added, 0 updated, N unchanged"). `dry_run` does all of it and rolls every batch back.
"""
from __future__ import annotations

import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, List, Optional, TextIO, Tuple

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.catalog.loader import ProductError, read_catalog
from bot.catalog.service import ADDED, UNCHANGED, UPDATED, CatalogConflict, ProductInput, upsert_product
from bot.catalog.shopify import COLUMNS, REQUIRED, read_products
from bot.config_files import ConfigError
from bot.shared.csv_stream import (
    CsvFile, CsvRecord, ImportFileError, ProgressCallback, rejection_lines, run_with_progress,
)

if TYPE_CHECKING:
    from bot.db import Database

BATCH_PRODUCTS = 200
MAX_REJECTION_SAMPLES = 1000
YAML_SUFFIXES = (".yml", ".yaml")

# Why a product (or a row) was refused, in the order the summary lists them.
REASONS = {
    "malformed_row": "malformed row",
    "missing_title": "missing title",
    "missing_sku": "missing SKU or handle",
    "bad_price": "bad price",
    "negative_price": "negative price",
    "unknown_currency": "unknown currency",
    "duplicate_product": "duplicate product",
    "duplicate_variant_sku": "duplicate variant SKU",
    "bad_value": "bad value",
    "refused": "refused by the store",
}


@dataclass(frozen=True)
class Rejection:
    file: str
    where: str  # "line 7", "lines 4-6 (handle oak-stool)", "products[3] (OE-LT-002)"
    reason: str  # a key of REASONS
    message: str

    def __str__(self) -> str:
        return f"{self.file} {self.where}: {REASONS.get(self.reason, self.reason)}: {self.message}"


@dataclass
class CatalogReport:
    file: str
    kind: str  # "catalog file" or "Shopify product export"
    dry_run: bool = False
    rows: int = 0  # CSV records, or products listed in a catalog file
    products: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # Shopify drafts and archived products
    rejected: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    rejections: List[Rejection] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        self.rejected_by_reason[rejection.reason] += 1
        if len(self.rejections) < MAX_REJECTION_SAMPLES:
            self.rejections.append(rejection)

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def import_catalog(
    database: "Database",
    path: Path,
    *,
    currency: str,
    store_url: str,
    dry_run: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> CatalogReport:
    """Import a .yml catalog or a Shopify product export .csv; raises ImportFileError when the file cannot be used
    (nothing is written then). Products that cannot be imported are in the report."""
    path = Path(path)
    if path.suffix.lower() in YAML_SUFFIXES:
        return _import_yaml(database, path, currency, store_url, dry_run, progress)
    if path.suffix.lower() == ".csv":
        return _import_csv(database, path, currency, store_url, dry_run, progress)
    raise ImportFileError(f"{path}: give a catalog file (.yml) or a Shopify product export (.csv)")


def _import_yaml(database: "Database", path: Path, currency: str, store_url: str, dry_run: bool,
                 progress: Optional[ProgressCallback]) -> CatalogReport:
    try:
        entries = read_catalog(path, currency)
        size = path.stat().st_size
    except ConfigError as error:
        raise ImportFileError(str(error)) from None
    except OSError as error:
        raise ImportFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    report = CatalogReport(path.name, "catalog file", dry_run, rows=len(entries))
    items: List[Tuple[str, Optional[ProductInput]]] = []
    for entry in entries:
        if entry.error is not None:
            key = f"{entry.error.key}: " if entry.error.key else ""
            report.reject(Rejection(report.file, entry.label, entry.error.reason, f"{key}{entry.error.problem}"))
        else:
            items.append((entry.label, entry.product))
    report.products = len(entries)

    def counted() -> Iterator[Tuple[str, Optional[ProductInput]]]:
        for done, item in enumerate(items, start=1):
            yield item
            if progress is not None:
                progress(size * done // max(len(items), 1), size, done)

    _write(database, report, counted(), store_url, dry_run)
    return report


def _import_csv(database: "Database", path: Path, currency: str, store_url: str, dry_run: bool,
                progress: Optional[ProgressCallback]) -> CatalogReport:
    source = CsvFile(path)
    try:
        columns = source.mapping(COLUMNS, REQUIRED, "product")
    except ImportFileError as error:
        source.close()
        other = source.kind()
        hint = f" — it looks like a Shopify {other[:-1]} export (import it with `.venv/bin/python -m bot import`)" if other else ""
        raise ImportFileError(f"{error}{hint}") from None
    report = CatalogReport(path.name, "Shopify product export", dry_run)

    def malformed(record: CsvRecord) -> None:
        report.rows += 1
        report.reject(Rejection(report.file, record.where, "malformed_row", record.error or "cannot be read"))

    def products() -> Iterator[Tuple[str, Optional[ProductInput]]]:
        for item in read_products(source, columns, currency, malformed):
            report.rows += item.rows
            report.products += 1
            where = f"{item.where} (handle {item.handle})" if item.handle else item.where
            if item.error is not None:
                line = f"line {item.error_line}" if item.error_line and item.error_line != _first_line(item.where) else ""
                at = ", ".join(part for part in (line, item.error.key) if part)
                report.reject(Rejection(report.file, where, item.error.reason,
                                        f"{at + ': ' if at else ''}{item.error.problem}"))
            elif item.product is None:
                report.skipped += 1
            else:
                yield where, item.product
            if progress is not None:
                progress(source.done_bytes, source.size, report.rows)

    try:
        _write(database, report, products(), store_url, dry_run)
    finally:
        source.close()
    report.rejections.sort(key=lambda rejection: _first_line(rejection.where))  # a product is judged at its end
    return report


def _first_line(where: str) -> int:
    number = where.split()[1].split("-")[0]
    return int(number) if number.isdigit() else 0


def _write(database: "Database", report: CatalogReport, items: Iterable[Tuple[str, Optional[ProductInput]]],
           store_url: str, dry_run: bool) -> None:
    batch: List[Tuple[str, ProductInput]] = []
    for where, product in items:
        if product is None:
            continue
        batch.append((where, product))
        if len(batch) >= BATCH_PRODUCTS:
            _write_batch(database, report, batch, store_url, dry_run)
            batch = []
    if batch:
        _write_batch(database, report, batch, store_url, dry_run)


def _write_batch(database: "Database", report: CatalogReport, batch: List[Tuple[str, ProductInput]],
                 store_url: str, dry_run: bool) -> None:
    outcomes: List[str] = []
    with _transaction(database, dry_run) as session:
        now = clock.now()
        for where, product in batch:
            try:
                with session.begin_nested():
                    outcomes.append(upsert_product(session, product, store_url, now))
            except CatalogConflict as conflict:
                report.reject(Rejection(report.file, where, conflict.reason, conflict.message))
            except (IntegrityError, DataError) as error:
                detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
                report.reject(Rejection(report.file, where, "refused", detail[:200]))
    for outcome in outcomes:  # counted once the batch is committed (or, dry run, rolled back as planned)
        report.count(outcome)


@contextmanager
def _transaction(database: "Database", dry_run: bool) -> Iterator[Session]:
    if not dry_run:
        with database.session(write=True) as session:
            yield session
        return
    with Session(database.engine, future=True, expire_on_commit=False) as session:
        session.begin()
        try:
            yield session
        finally:
            session.rollback()


def format_report(report: CatalogReport) -> str:
    """The summary the CLI prints: the counts, then every rejection with its place and reason."""
    counts = f"{report.added:,} added, {report.updated:,} updated, {report.unchanged:,} unchanged"
    skipped = f", {report.skipped:,} skipped (draft or archived)" if report.skipped else ""
    rows = f"{report.rows:,} rows, " if report.kind != "catalog file" else ""
    lines = [f"{report.file} ({report.kind}): {rows}{report.products:,} products: {counts}{skipped}"]
    if report.dry_run:
        lines.append("dry run: nothing was written (the counts are what the import would do)")
    lines.extend(rejection_lines(report.rejected, report.rejected_by_reason, report.rejections, REASONS))
    return "\n".join(lines)


def catalog_import_command(
    path: Path,
    *,
    database: "Database",
    currency: str,
    store_url: str,
    dry_run: bool = False,
    out: Optional[TextIO] = None,
    err: Optional[TextIO] = None,
) -> int:
    """0 when products went in (even if some were rejected: they are listed), 1 when none could be imported,
    2 when the file cannot be used or the database failed (what was committed stays; run it again to finish)."""
    out = out or sys.stdout
    err = err or sys.stderr
    report = run_with_progress(err, lambda bar: import_catalog(
        database, path, currency=currency, store_url=store_url, dry_run=dry_run, progress=bar))
    if report is None:
        return 2
    print(f"[catalog] {format_report(report)}", file=out)
    if report.imported == 0:
        print("nothing was imported" + (" (the file lists no products)" if not report.products else ""), file=err)
        return 1
    return 0


__all__ = ["ADDED", "UPDATED", "UNCHANGED", "CatalogReport", "ProductError", "Rejection", "catalog_import_command",
           "format_report", "import_catalog"]
