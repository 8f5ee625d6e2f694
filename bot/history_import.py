"""`python -m bot import`: a store's history from Shopify's customer and order exports. Rows are parsed here;
customers join and orders are recorded through the same services as the store API (bot/membership.py,
bot/order_events.py, so referrals are attributed and reversed too), in transactions of BATCH_ROWS rows: a
transaction's customers through the membership batch (join_many), its orders through the order events' batch
(apply_order_states); each refuses a row alone. A row the store cannot take is reported with its line and the rest goes in.
Running the same files again changes nothing. The README's "Importing a store's history" has the columns."""
from __future__ import annotations

import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import (
    TYPE_CHECKING, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, TextIO, Tuple, Union,
)

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.identity import CustomerFacts, IdentityError, customer_ids_by_email
from bot.loyalty.earning import award_tier_entry
from bot.loyalty.orders import MAX_LINE_QUANTITY, MAX_ORDER_TOTAL, LineInput, OrderConflict
from bot.loyalty.program import Program
from bot.loyalty.tiers import mark_announced, recompute_tiers
from bot.membership import Joining, join_many
from bot.order_events import OrderState, PaidOrder, RefundedLess, apply_order_states
from bot.shared.csv_stream import (
    CsvFile, CsvRecord, ImportFileError, ProgressCallback, lines_label, rejection_lines, run_with_progress,
)

if TYPE_CHECKING:
    from bot.db import Database

BATCH_ROWS = 500  # CSV rows per transaction, at most
BATCH_SECONDS = 2.0  # a batch commits sooner if it has taken this long (SQLite: the bot's writes wait meanwhile)
MAX_REJECTION_SAMPLES = 1000  # rejections kept for the summary; all are counted
TIER_BATCH = 500  # customers per transaction when tiers are recomputed
MAX_ORDER_ROWS = 1000  # line items of one order; more is not an order but a broken export (and memory)
MAX_DISCOUNT_CODES = 10  # codes on one order (as the store API takes)

# Why a row was refused, in the order the summary lists them.
REASONS = {
    "malformed_row": "malformed row",
    "bad_email": "bad email",
    "bad_total": "bad total",
    "bad_refund": "bad refund",
    "unknown_currency": "unknown currency",
    "unknown_customer": "unknown customer",
    "unknown_status": "unknown financial status",
    "duplicate_order": "duplicate order id with different facts",
    "conflicting_customer": "conflicting customer",
    "refused": "refused by the store",
}

# Shopify column → our field. Header names match whatever their case and spacing.
CUSTOMER_COLUMNS: Dict[str, Tuple[str, ...]] = {
    "customer_id": ("Customer ID",),
    "first_name": ("First Name",),
    "last_name": ("Last Name",),
    "email": ("Email",),
    "accepts_marketing": ("Accepts Email Marketing", "Accepts Marketing"),
    "total_spent": ("Total Spent",),
    "total_orders": ("Total Orders",),
}
CUSTOMER_REQUIRED = ("first_name", "last_name", "email")

ORDER_COLUMNS: Dict[str, Tuple[str, ...]] = {
    "name": ("Name",),
    "email": ("Email",),
    "financial_status": ("Financial Status",),
    "paid_at": ("Paid at",),
    "created_at": ("Created at",),
    "currency": ("Currency",),
    "total": ("Total",),
    "refunded_amount": ("Refunded Amount",),
    "cancelled_at": ("Cancelled at",),
    "line_quantity": ("Lineitem quantity",),
    "line_name": ("Lineitem name",),
    "line_price": ("Lineitem price",),
    "line_sku": ("Lineitem sku",),
    "discount_code": ("Discount Code",),
}
ORDER_REQUIRED = ("name", "email", "financial_status", "currency", "total", "created_at")

# Shopify financial statuses. Paid money earns points; the others were never (fully) paid.
PAID_STATUSES = ("paid", "partially_refunded", "refunded")
UNPAID_STATUSES = ("pending", "authorized", "partially_paid", "unpaid", "voided", "expired")

_EMAIL = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"'.]+(\.[^@\s,;<>\"'.]+)+$")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Rejection:
    file: str
    line: int  # first physical line of the row (or of the order's rows) in the file, 1 = header
    reason: str  # a key of REASONS
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}: {REASONS.get(self.reason, self.reason)}: {self.message}"


@dataclass
class ImportReport:
    customer_rows: int = 0
    order_rows: int = 0
    customers_created: int = 0
    customers_existing: int = 0
    customers_updated: int = 0  # existing customers given their Customer ID, name or new email
    signup_points: int = 0
    orders_recorded: int = 0
    orders_replayed: int = 0
    points_awarded: int = 0
    refunds_recorded: int = 0
    refunds_replayed: int = 0
    cancellations: int = 0
    cancellations_replayed: int = 0
    orders_skipped: Counter = field(default_factory=Counter)  # financial status (or "zero total") → orders
    tier_changes: int = 0
    rejected: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    rejections: List[Rejection] = field(default_factory=list)  # the first MAX_REJECTION_SAMPLES

    @property
    def rows_read(self) -> int:
        return self.customer_rows + self.order_rows

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        self.rejected_by_reason[rejection.reason] += 1
        if len(self.rejections) < MAX_REJECTION_SAMPLES:
            self.rejections.append(rejection)


# --- parsing -----------------------------------------------------------------------------------------


class _RowError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _email(raw: str) -> str:
    email = raw.strip().lower()
    if not email:
        raise _RowError("bad_email", "the Email is empty")
    if len(email) > 254 or not _EMAIL.match(email) or ".." in email:
        raise _RowError("bad_email", f"{raw.strip()!r} is not an email address")
    return email


def _money(what: str, raw: str, *, required: bool = True) -> Optional[Decimal]:
    text = raw.strip()
    if not text:
        if required:
            raise _RowError("malformed_row", f"{what} is empty")
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise _RowError("malformed_row", f"{what} {text!r} is not a number") from None
    if not amount.is_finite():
        raise _RowError("malformed_row", f"{what} {text!r} is not a number")
    return amount


def _date(what: str, raw: str, now: datetime) -> Optional[datetime]:
    text = raw.strip()
    if not text:
        return None
    parsed = _parse_date(text)
    if isinstance(parsed, str):
        raise _RowError("malformed_row", f"{what} {text!r} {parsed}")
    if parsed > now + timedelta(days=1):
        raise _RowError("malformed_row", f"{what} {text} is in the future")
    return parsed


@lru_cache(maxsize=4096)
def _parse_date(text: str) -> Union[datetime, str]:
    """The UTC time a date column names, or why it names none. Cached: an export's orders share few distinct
    times (a day's orders, a line item's rows), and strptime was a tenth of an import's time."""
    parsed: Optional[datetime] = None
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text[:-1] + "+0000" if text.endswith("Z") else text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return "is not a date like 2024-03-05 14:22:10 -0500"
    if parsed.tzinfo is None:
        return "has no time zone offset (like -0500)"
    return parsed.astimezone(timezone.utc)


def _order_name(raw: str) -> str:
    name = raw.strip()
    if name.startswith("#"):
        name = name[1:].strip()
    if not name:
        raise _RowError("malformed_row", "the order Name is empty")
    if len(name) > 64:
        raise _RowError("malformed_row", f"the order Name {name[:20]!r}… is longer than 64 characters")
    return name


def _status(raw: str) -> str:
    return "_".join(raw.strip().lower().replace("-", " ").split())


@dataclass(frozen=True)
class _CustomerRow:
    email: str
    customer_id: Optional[str]
    first_name: Optional[str]
    last_name: Optional[str]


def _parse_customer(fields: List[str], columns: Dict[str, int]) -> _CustomerRow:
    def get(key: str) -> str:
        return fields[columns[key]].strip() if key in columns else ""

    email = _email(get("email"))
    customer_id = get("customer_id").lstrip("'").strip() or None  # Shopify quotes ids for spreadsheets: '7091…
    if customer_id is not None and len(customer_id) > 64:
        raise _RowError("malformed_row", "the Customer ID is longer than 64 characters")
    return _CustomerRow(email, customer_id, get("first_name")[:100] or None, get("last_name")[:100] or None)


@dataclass
class _OrderGroup:
    name: str
    first_line: int
    last_line: int
    email: str
    status: str
    placed_at: Optional[datetime]
    currency: str
    total: Optional[Decimal]
    refunded: Decimal
    cancelled_at: Optional[datetime]
    lines: Tuple[LineInput, ...]
    discount_codes: Tuple[str, ...] = ()


def _parse_line_item(fields: List[str], columns: Dict[str, int], line: int) -> Optional[LineInput]:
    if "line_name" not in columns:
        return None
    title = fields[columns["line_name"]].strip()
    quantity_text = fields[columns["line_quantity"]].strip()
    price_text = fields[columns["line_price"]].strip()
    if not (title or quantity_text or price_text):
        return None
    where = f"line {line}: line item"
    if not title:
        raise _RowError("malformed_row", f"{where}: Lineitem name is empty")
    try:
        quantity = int(quantity_text)
    except ValueError:
        raise _RowError("malformed_row", f"{where} {title!r}: Lineitem quantity {quantity_text!r} is not a whole number") from None
    if not 1 <= quantity <= MAX_LINE_QUANTITY:
        raise _RowError("malformed_row", f"{where} {title!r}: Lineitem quantity must be 1 to {MAX_LINE_QUANTITY}, not {quantity}")
    price = _money(f"{where} {title!r}: Lineitem price", price_text)
    assert price is not None
    if price < 0 or price > MAX_ORDER_TOTAL or price != price.quantize(_CENT):
        raise _RowError("malformed_row", f"{where} {title!r}: Lineitem price {price_text} is not a valid amount")
    sku = fields[columns["line_sku"]].strip() if "line_sku" in columns else ""
    if len(sku) > 64:
        raise _RowError("malformed_row", f"{where} {title!r}: Lineitem sku is longer than 64 characters")
    return LineInput(title=title, quantity=quantity, unit_price=price, sku=sku or None)


def _parse_order(rows: List[Tuple[int, List[str]]], columns: Dict[str, int], now: datetime) -> _OrderGroup:
    """One order from its rows; the first row carries the order's facts, every row one line item."""
    first_line, head = rows[0]
    last_line = rows[-1][0]

    def get(key: str) -> str:
        return head[columns[key]].strip() if key in columns else ""

    name = _order_name(get("name"))
    status = _status(get("financial_status"))
    if not status:
        raise _RowError("malformed_row", f"order {name}: Financial Status is empty (is its first row missing?)")
    if status in UNPAID_STATUSES:
        # Never paid: nothing of it is recorded, so nothing else of it needs to be read.
        return _OrderGroup(name, first_line, last_line, "", status, None, "", None, Decimal(0), None, ())
    if status not in PAID_STATUSES:
        raise _RowError("unknown_status", f"order {name}: Financial Status {get('financial_status')!r} is not one Shopify uses")
    paid_at = _date(f"order {name}: Paid at", get("paid_at"), now)
    created_at = _date(f"order {name}: Created at", get("created_at"), now)
    cancelled_at = _date(f"order {name}: Cancelled at", get("cancelled_at"), now)
    if not get("email"):
        raise _RowError("unknown_customer", f"order {name} has no Email, so it cannot be matched to a customer")
    email = _email(get("email"))
    placed_at = paid_at or created_at
    if placed_at is None:
        raise _RowError("malformed_row", f"order {name} has neither Paid at nor Created at")
    currency = get("currency").upper()
    total = _money(f"order {name}: Total", get("total"))
    assert total is not None
    if total < 0:
        raise _RowError("bad_total", f"order {name}: Total {total} is negative")
    if total > MAX_ORDER_TOTAL:
        raise _RowError("bad_total", f"order {name}: Total {total} is larger than any order this store can take ({MAX_ORDER_TOTAL})")
    if total != total.quantize(_CENT):
        raise _RowError("bad_total", f"order {name}: Total {total} has more than two decimal places")
    refunded = _money(f"order {name}: Refunded Amount", get("refunded_amount"), required=False) or Decimal(0)
    if status == "refunded" and refunded == 0:
        refunded = total
    if refunded > total:
        raise _RowError("bad_refund", f"order {name}: Refunded Amount {refunded} is more than its Total {total}")
    if refunded < 0 or refunded != refunded.quantize(_CENT):
        raise _RowError("bad_refund", f"order {name}: Refunded Amount {refunded} is not a valid amount")
    lines = []
    for line, fields in rows:
        item = _parse_line_item(fields, columns, line)
        if item is not None:
            lines.append(item)
    codes = tuple(code.strip() for code in get("discount_code").split(",") if code.strip())
    if len(codes) > MAX_DISCOUNT_CODES or any(len(code) > 64 for code in codes):
        raise _RowError("malformed_row", f"order {name}: Discount Code holds more than {MAX_DISCOUNT_CODES} codes "
                                         "or one longer than 64 characters")
    return _OrderGroup(
        name, first_line, last_line, email, status, placed_at, currency, total, refunded, cancelled_at, tuple(lines),
        codes,
    )


# --- applying ----------------------------------------------------------------------------------------


@dataclass
class _Unit:
    """One customer row or one order (its rows), ready to apply, or already known to be rejected."""

    rows: int
    first_line: int
    customer: Optional[_CustomerRow] = None  # a customer row to join
    rejection: Optional[Rejection] = None
    skipped: Optional[str] = None  # an order with nothing to record (not paid, or free), and why
    order: Optional[_OrderGroup] = None  # a paid order to record


class _Importer:
    def __init__(self, database: "Database", program: Program, report: ImportReport,
                 progress: Optional[ProgressCallback], total_bytes: int) -> None:
        self.database = database
        self.program = program
        self.report = report
        self.progress = progress
        self.total_bytes = total_bytes
        self.done_before = 0  # bytes of the files already finished
        self.now = clock.now()
        self.touched: Set[int] = set()  # customers whose orders this run saw: their tier is recomputed

    def run_file(self, source: CsvFile, units: Iterator[_Unit], rows_attribute: str,
                 apply: Callable[[Session, CsvFile, List[_Unit]], None]) -> None:
        """Apply the units in transactions of about BATCH_ROWS rows: `apply` gets each transaction's units that
        need the database, and refuses a unit alone (the membership or order events' batch)."""
        finished = False
        while not finished:
            finished = True
            rows_in_batch = 0
            deadline = time.monotonic() + BATCH_SECONDS
            with self.database.session(write=True, bulk=True) as session:
                batch: List[_Unit] = []
                for unit in units:
                    setattr(self.report, rows_attribute, getattr(self.report, rows_attribute) + unit.rows)
                    rows_in_batch += unit.rows
                    if unit.rejection is not None:
                        self.report.reject(unit.rejection)
                    elif unit.skipped is not None:
                        self.report.orders_skipped[unit.skipped] += 1
                    else:
                        batch.append(unit)
                    if rows_in_batch >= BATCH_ROWS or time.monotonic() > deadline:
                        finished = False
                        break
                apply(session, source, batch)
            self.report_progress(source.done_bytes)
        self.done_before += source.size

    def apply_customers(self, session: Session, source: CsvFile, units: List[_Unit]) -> None:
        """The transaction's customers through the membership batch (bot/membership.py join_many), each
        refused alone."""
        joinings = []
        for unit in units:
            row = unit.customer
            assert row is not None
            joinings.append(Joining(CustomerFacts(row.email, row.customer_id, row.first_name, row.last_name)))
        outcomes = join_many(session, self.program, joinings, email_may_change=True, at=self.now,
                             store_id_label="Customer ID")
        report = self.report
        for unit, outcome in zip(units, outcomes):
            error = outcome.error
            if error is None:
                if outcome.created:
                    report.customers_created += 1
                    report.signup_points += outcome.signup_points
                else:
                    report.customers_existing += 1
                    report.customers_updated += outcome.updated
            elif isinstance(error, IdentityError):
                report.reject(Rejection(source.label, unit.first_line, "conflicting_customer", str(error)))
            elif isinstance(error, (IntegrityError, DataError)):
                detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
                report.reject(Rejection(source.label, unit.first_line, "refused", f"the database refused it: {detail}"))
            else:
                report.reject(Rejection(source.label, unit.first_line, "refused", str(error)))

    def report_progress(self, done_in_file: int) -> None:
        if self.progress is not None:
            self.progress(min(self.done_before + done_in_file, self.total_bytes), self.total_bytes, self.report.rows_read)

    # customers

    def customer_units(self, source: CsvFile, columns: Dict[str, int]) -> Iterator[_Unit]:
        for record in source.records():
            if record.fields is None:
                yield _Unit(1, record.first_line, rejection=Rejection(
                    source.label, record.first_line, "malformed_row", f"{record.where} {record.error}"))
                continue
            try:
                row = _parse_customer(record.fields, columns)
            except _RowError as error:
                yield _Unit(1, record.first_line, rejection=Rejection(
                    source.label, record.first_line, error.reason, error.message))
                continue
            yield _Unit(1, record.first_line, customer=row)

    # orders

    def order_units(self, source: CsvFile, columns: Dict[str, int]) -> Iterator[_Unit]:
        """Consecutive rows with the same Name are one order; only the current order is held in memory."""
        name_index = columns["name"]
        group: Optional[_Group] = None
        for record in source.records():
            fields = record.fields if record.fields is not None else record.raw
            name = fields[name_index].strip() if fields is not None and len(fields) > name_index else ""
            if group is not None and name and name == group.name:
                group.add(record)
                continue
            if group is not None:
                yield self._order_unit(source, columns, group)
            group = _Group(name, record.first_line)
            group.add(record)
        if group is not None:
            yield self._order_unit(source, columns, group)

    def _order_unit(self, source: CsvFile, columns: Dict[str, int], group: "_Group") -> _Unit:
        where = lines_label(group.first_line, group.last_line)
        if group.spoiled is not None:
            name = group.name[1:].strip() if group.name.startswith("#") else group.name
            message = f"order {name} ({where}): {group.spoiled}" if name and group.count > 1 else group.spoiled
            return _Unit(group.count, group.first_line,
                         rejection=Rejection(source.label, group.first_line, "malformed_row", message))
        try:
            order = _parse_order(group.rows, columns, self.now)
        except _RowError as error:
            message = error.message if group.count == 1 else f"{error.message} ({where})"
            return _Unit(group.count, group.first_line,
                         rejection=Rejection(source.label, group.first_line, error.reason, message))
        # What needs no database is settled here, without a savepoint.
        if order.status not in PAID_STATUSES:
            return _Unit(group.count, group.first_line, skipped=order.status)
        if order.currency != self.program.currency:
            message = (f"order {order.name}: Currency {order.currency or '(empty)'} is not the program's "
                       f"currency {self.program.currency}")
            return _Unit(group.count, group.first_line,
                         rejection=Rejection(source.label, group.first_line, "unknown_currency", message))
        if order.total == 0:
            return _Unit(group.count, group.first_line, skipped="zero total")
        return _Unit(group.count, group.first_line, order=order)

    def apply_orders(self, session: Session, source: CsvFile, units: List[_Unit]) -> None:
        """The transaction's orders through the order events' batch (bot/order_events.py apply_order_states):
        customers found by email with one query, each order refused alone."""
        customers = customer_ids_by_email(session, (unit.order.email for unit in units if unit.order is not None))
        applied: List[Tuple[_Unit, _OrderGroup, int]] = []
        states: List[OrderState] = []
        for unit in units:
            order = unit.order
            assert order is not None and order.total is not None and order.placed_at is not None
            customer_id = customers.get(order.email)
            if customer_id is None:
                self.report.reject(Rejection(source.label, unit.first_line, "unknown_customer",
                                             f"order {order.name}: no customer with email {order.email} "
                                             f"(import the customers file first)"))
                continue
            applied.append((unit, order, customer_id))
            states.append(OrderState(
                PaidOrder(order.name, customer_id, order.total, order.placed_at, currency=order.currency,
                          lines=order.lines, discount_codes=order.discount_codes),
                refunded_total=order.refunded or None, cancelled_at=order.cancelled_at, source="import",
            ))
        # Tiers are recomputed once per customer at the end (recompute_tiers).
        outcomes = apply_order_states(session, self.program, states, now=self.now)
        for (unit, order, customer_id), outcome in zip(applied, outcomes):
            if outcome.error is not None:
                self.report.reject(Rejection(source.label, unit.first_line, *_order_refusal(order, customer_id,
                                                                                            outcome.error)))
                continue
            report = self.report
            self.touched.add(customer_id)
            if outcome.created:
                report.orders_recorded += 1
                report.points_awarded += outcome.points_awarded
            else:
                report.orders_replayed += 1
            report.refunds_recorded += bool(outcome.refunds_recorded)
            report.refunds_replayed += outcome.refunds_replayed
            report.cancellations += outcome.cancelled
            report.cancellations_replayed += outcome.cancellation_replayed

    # tiers

    def recompute_tiers(self) -> None:
        """Each touched customer's tier, once: entry rewards posted, the change recorded as already told."""
        ids = sorted(self.touched)
        for start in range(0, len(ids), TIER_BATCH):
            with self.database.session(write=True, bulk=True) as session:
                changes = []
                for done in recompute_tiers(session, self.program, ids[start:start + TIER_BATCH], self.now, "import",
                                            award_tier_entry):
                    if done.error is not None:
                        self.report.reject(Rejection("(tiers)", 0, "refused", f"customer {done.customer_id}: {done.error}"))
                    elif done.change is not None:
                        changes.append(done.change)
                # History is not news: the bot does not announce tiers reached by imported orders.
                mark_announced(session, changes, self.now)
                self.report.tier_changes += len(changes)


def _order_refusal(order: _OrderGroup, customer_id: int, error: Exception) -> Tuple[str, str]:
    """(reason, message) for an order the order events refused."""
    if isinstance(error, OrderConflict):
        existing = error.existing
        whose = "another customer" if existing.customer_id != customer_id else "the same customer"
        return "duplicate_order", (f"order {order.name} was already recorded for {whose} with total "
                                   f"{existing.total}; this one is {order.email}, {order.total}")
    if isinstance(error, RefundedLess):
        return "bad_refund", (f"order {order.name}: Refunded Amount {error.reported} is less than the "
                              f"{error.already} already refunded")
    if isinstance(error, (IntegrityError, DataError)):
        detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        return "refused", f"the database refused it: {detail}"
    return "refused", str(error)


class _Group:
    """The rows of the order being read."""

    def __init__(self, name: str, first_line: int) -> None:
        self.name = name
        self.first_line = first_line
        self.last_line = first_line
        self.count = 0
        self.rows: List[Tuple[int, List[str]]] = []
        self.spoiled: Optional[str] = None  # a malformed row of this order: the whole order is refused

    def add(self, record: CsvRecord) -> None:
        self.count += 1
        self.last_line = record.last_line
        if record.fields is None:
            self.spoiled = self.spoiled or f"{record.where} {record.error}"
        elif len(self.rows) >= MAX_ORDER_ROWS:
            self.spoiled = self.spoiled or f"more than {MAX_ORDER_ROWS:,} rows share this order Name"
            self.rows.clear()  # nothing of it will be recorded: hold none of it
        elif self.spoiled is None:
            self.rows.append((record.first_line, record.fields))


# --- entry points ------------------------------------------------------------------------------------


def detect_kind(path: Path) -> str:
    """"customers" or "orders", from the file's header row; ImportFileError for anything else."""
    source = CsvFile(path)
    try:
        kind = source.kind()
    finally:
        source.close()
    if kind is None:
        raise ImportFileError(
            f"{path}: neither a Shopify customer export (Email, First Name, Last Name, …) nor an order export "
            f"(Name, Email, Financial Status, Total, …)"
        )
    return kind


def classify_files(files: Iterable[Path], customers: Optional[Path] = None,
                   orders: Optional[Path] = None) -> Tuple[Optional[Path], Optional[Path]]:
    """Tell positional files apart by their header: (customers file, orders file)."""
    found = {"customers": customers, "orders": orders}
    for path in files:
        kind = detect_kind(Path(path))
        if found[kind] is not None:
            raise ImportFileError(f"two {kind} files given ({found[kind]} and {path}); import them one run at a time")
        found[kind] = Path(path)
    if found["customers"] is None and found["orders"] is None:
        raise ImportFileError("nothing to import: give a customers export, an orders export, or both")
    return found["customers"], found["orders"]


def run_import(
    database: "Database",
    program: Program,
    customers_csv: Optional[Path],
    orders_csv: Optional[Path],
    progress: Optional[ProgressCallback] = None,
) -> ImportReport:
    """Import the customers file, then the orders file, then recompute the tiers of everyone touched.

    Both headers are checked before anything is written: a file that cannot be imported raises
    ImportFileError and nothing is written. Rows that cannot be imported are in the report.
    """
    if customers_csv is None and orders_csv is None:
        raise ImportFileError("nothing to import: give a customers export, an orders export, or both")
    sources: List[Tuple[str, CsvFile, Dict[str, int]]] = []
    try:
        for kind, path in (("customers", customers_csv), ("orders", orders_csv)):
            if path is None:
                continue
            source = CsvFile(Path(path))
            sources.append((kind, source, {}))
            try:
                if kind == "customers":
                    columns = source.mapping(CUSTOMER_COLUMNS, CUSTOMER_REQUIRED, "customer")
                else:
                    columns = source.mapping(ORDER_COLUMNS, ORDER_REQUIRED, "order")
            except ImportFileError as error:
                other = source.kind()
                if other is not None and other != kind:
                    raise ImportFileError(f"{error} — it looks like a Shopify {other[:-1]} export") from None
                raise
            sources[-1] = (kind, source, columns)
    except ImportFileError:
        for _, source, _ in sources:
            source.close()
        raise

    report = ImportReport()
    importer = _Importer(database, program, report, progress, sum(source.size for _, source, _ in sources))
    importer.report_progress(0)
    try:
        for kind, source, columns in sources:
            if kind == "customers":
                importer.run_file(source, importer.customer_units(source, columns), "customer_rows",
                                  importer.apply_customers)
            else:
                importer.run_file(source, importer.order_units(source, columns), "order_rows", importer.apply_orders)
    finally:
        for _, source, _ in sources:
            source.close()
    importer.recompute_tiers()
    return report


def format_report(report: ImportReport) -> str:
    """The summary the CLI prints: what was imported, then every rejection reason with samples."""
    lines: List[str] = []
    if report.customer_rows:
        updated = f" ({report.customers_updated} updated)" if report.customers_updated else ""
        lines.append(
            f"customers: {report.customer_rows:,} rows: {report.customers_created:,} created "
            f"({report.signup_points:,} signup points), {report.customers_existing:,} already present{updated}"
        )
    if report.order_rows:
        skipped = sum(report.orders_skipped.values())
        detail = ", ".join(f"{status} {count:,}" for status, count in sorted(report.orders_skipped.items()))
        lines.append(
            f"orders: {report.order_rows:,} rows: {report.orders_recorded:,} recorded "
            f"({report.points_awarded:,} points), {report.orders_replayed:,} already present; "
            f"{report.refunds_recorded:,} refunds ({report.refunds_replayed:,} already present), "
            f"{report.cancellations:,} cancellations ({report.cancellations_replayed:,} already present); "
            f"{skipped:,} skipped{f' ({detail})' if detail else ''}"
        )
    lines.append(f"tiers: {report.tier_changes:,} customers changed tier (recorded as already announced)")
    lines.extend(rejection_lines(report.rejected, report.rejected_by_reason, report.rejections, REASONS))
    return "\n".join(lines)


def import_command(
    files: Sequence[Path],
    customers: Optional[Path] = None,
    orders: Optional[Path] = None,
    *,
    database: "Database",
    program: Program,
    out: Optional[TextIO] = None,
    err: Optional[TextIO] = None,
) -> int:
    """`python -m bot import`: 0 when every row went in, 1 when some were rejected, 2 when a file is unusable
    (or the database failed part way: what was committed stays, and running the same command again finishes)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        customers_csv, orders_csv = classify_files(files, customers, orders)
    except ImportFileError as error:
        print(f"error: {error}", file=err)
        print("nothing was imported", file=err)
        return 2
    report = run_with_progress(err, lambda bar: run_import(database, program, customers_csv, orders_csv, progress=bar))
    if report is None:
        return 2
    print(f"[import] {format_report(report)}", file=out)
    return 1 if report.rejected else 0


