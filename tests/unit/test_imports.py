"""Bulk import of Shopify customer and order exports (bot/history_import.py), on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.identity import create_customer
from bot import history_import as imports
from bot.shared import csv_stream
from bot.history_import import (
    ImportFileError, classify_files, format_report, import_command, run_import,
)
from bot.loyalty.ledger import LedgerError, verify_balances
from bot.models import Customer, LedgerEntry, Order, OrderLine, TierChange
from bot.settings import PROJECT_ROOT

NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
DEMO = PROJECT_ROOT / "data" / "demo" / "import"

CUSTOMER_HEADER = ["Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing", "Total Spent", "Total Orders"]
ORDER_HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Currency", "Subtotal", "Total", "Created at", "Lineitem quantity",
    "Lineitem name", "Lineitem price", "Lineitem sku", "Cancelled at", "Refunded Amount",
]
WHEN = "2026-03-05 14:22:10 -0500"


@pytest.fixture(autouse=True)
def fixed_clock(clock) -> None:
    """The demo exports are dated up to November 2026; tiers over a rolling year depend on today."""
    clock.at(NOW)


def customer(email: str, customer_id: str = "", first: str = "Ann", last: str = "Lee") -> List[str]:
    return [f"'{customer_id}" if customer_id else "", first, last, email, "yes", "0.00", "0"]


def order(name: str, email: str, total: str = "100.00", *, status: str = "paid", when: str = WHEN,
          currency: str = "USD", item: str = "Pebble table lamp", qty: str = "1", price: str = "",
          sku: str = "OE-LT-002", cancelled: str = "", refunded: str = "") -> List[str]:
    return [name, email, status, when if status != "pending" else "", currency, total, total, when, qty, item,
            price or total, sku, cancelled, refunded]


def line(name: str, email: str, item: str, qty: str, price: str, sku: str = "") -> List[str]:
    """A further line item of the order above: Shopify leaves the order's own columns empty."""
    row = [""] * len(ORDER_HEADER)
    row[0], row[1], row[8], row[9], row[10], row[11] = name, email, qty, item, price, sku
    return row


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def balances(database: Database) -> Dict[str, int]:
    with database.session() as session:
        return dict(session.execute(select(Customer.email, Customer.points_balance)).all())


def ledger_size(database: Database) -> int:
    with database.session() as session:
        return session.execute(select(func.count(LedgerEntry.id))).scalar_one()


def reasons(report: imports.ImportReport) -> set:
    return {(rejection.file, rejection.line, rejection.reason) for rejection in report.rejections}


def test_demo_exports_import_then_rerun_changes_nothing(any_db: Database, program) -> None:
    report = run_import(any_db, program, DEMO / "customers.csv", DEMO / "orders.csv")
    assert report.rejected == 0, format_report(report)
    assert (report.customer_rows, report.customers_created, report.customers_existing) == (10, 10, 0)
    assert report.signup_points == 1000
    assert (report.order_rows, report.orders_recorded, report.orders_replayed) == (30, 19, 0)
    assert (report.refunds_recorded, report.cancellations) == (3, 1)
    assert report.orders_skipped == {"pending": 1}
    assert report.tier_changes == 8
    first = balances(any_db)
    # Maya: signup 100; #2001 $183 at Bronze 915; #2005 $637 at Bronze 3,185 less $79 refunded (395);
    # #2018 $587 at Silver (×1.25) 3,668; $1,328 kept in the last year makes her Gold: entry reward 250.
    assert first["maya.lindqvist@example.com"] == 100 + 915 + 3185 - 395 + 3668 + 250
    assert first["sofia.rossi@example.com"] > 0  # the export's mixed-case email is stored lower-case
    with any_db.session() as session:
        assert verify_balances(session) == []
        maya = session.execute(select(Customer).where(Customer.email == "maya.lindqvist@example.com")).scalar_one()
        assert (maya.external_id, maya.first_name, maya.tier_name) == ("7091000001", "Maya", "Gold")
        # History is not news: no tier change is left for the bot to announce.
        assert session.execute(select(func.count(TierChange.id)).where(TierChange.announced_at.is_(None))).scalar_one() == 0
        assert session.execute(select(func.count(Order.id))).scalar_one() == 19
        assert session.execute(select(Order.status).where(Order.external_id == "2007")).scalar_one() == "cancelled"
    entries = ledger_size(any_db)

    again = run_import(any_db, program, DEMO / "customers.csv", DEMO / "orders.csv")
    assert again.rejected == 0, format_report(again)
    assert (again.customers_created, again.customers_existing, again.customers_updated) == (0, 10, 0)
    assert (again.orders_recorded, again.orders_replayed, again.points_awarded) == (0, 19, 0)
    assert (again.refunds_recorded, again.cancellations, again.tier_changes, again.signup_points) == (0, 0, 0, 0)
    assert again.refunds_replayed == 3 and again.cancellations_replayed == 1
    assert balances(any_db) == first
    assert ledger_size(any_db) == entries
    with any_db.session() as session:
        assert verify_balances(session) == []


def test_every_rejection_reason_is_reported_with_its_line(any_db: Database, program, tmp_path: Path) -> None:
    customers = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER, [
        customer("ann@example.com", "101"),                 # 2
        customer("bob@", "102"),                            # 3 bad email
        customer("", "103"),                                # 4 no email
        customer("Cat@Example.com", "104", "Cat"),          # 5
        ["105", "Dan", "dan@example.com"],                  # 6 wrong number of fields
        customer("ann@example.com", "999"),                 # 7 Ann has another Customer ID
    ])
    orders = write_csv(tmp_path / "orders.csv", ORDER_HEADER, [
        order("#1001", "ann@example.com", "100.00"),                            # 2
        order("#1002", "ann@example.com", "-5.00"),                             # 3 negative total
        order("#1003", "ann@example.com", "10.00", currency="EUR"),             # 4 unknown currency
        order("#1004", "zed@example.com", "10.00"),                             # 5 unknown customer
        ["#1005", "ann@example.com", "paid"],                                   # 6 wrong number of fields
        order("#1006", "ann@example.com", when="yesterday"),                    # 7 unreadable date
        order("#1007", "ann@example.com", "ten"),                               # 8 unreadable number
        order("#1001", "cat@example.com", "100.00"),                            # 9 same id, other facts
        order("#1008", "ann@example.com", status="shipped"),                    # 10 not a financial status
        order("#1009", "ann@example.com", "50.00", status="partially_refunded", refunded="80.00"),  # 11
        order("#1010", "", "10.00"),                                            # 12 no email
        order("#1011", "ann@example.com", "2000000.00"),                        # 13 absurd total
        order("#1012", "cat@example.com", "40.00"),                             # 14
        order("#1013", "not-an-email", "40.00"),                                # 15 bad email
        order("#1014", "ann@example.com", "9.999"),                             # 16 fractions of a cent
    ])
    report = run_import(any_db, program, customers, orders)
    assert reasons(report) == {
        ("customers.csv", 3, "bad_email"), ("customers.csv", 4, "bad_email"),
        ("customers.csv", 6, "malformed_row"), ("customers.csv", 7, "conflicting_customer"),
        ("orders.csv", 3, "bad_total"), ("orders.csv", 4, "unknown_currency"), ("orders.csv", 5, "unknown_customer"),
        ("orders.csv", 6, "malformed_row"), ("orders.csv", 7, "malformed_row"), ("orders.csv", 8, "malformed_row"),
        ("orders.csv", 9, "duplicate_order"), ("orders.csv", 10, "unknown_status"), ("orders.csv", 11, "bad_refund"),
        ("orders.csv", 12, "unknown_customer"), ("orders.csv", 13, "bad_total"), ("orders.csv", 15, "bad_email"),
        ("orders.csv", 16, "bad_total"),
    }
    assert report.rejected == 17 and sum(report.rejected_by_reason.values()) == 17
    assert (report.customers_created, report.orders_recorded) == (2, 2)
    assert balances(any_db) == {"ann@example.com": 100 + 500, "cat@example.com": 100 + 200}
    with any_db.session() as session:
        assert verify_balances(session) == []
        assert session.execute(select(func.count(Order.id))).scalar_one() == 2

    text = format_report(report)
    assert "rejected: 17" in text and "bad email: 3" in text and "unknown currency: 1" in text
    assert "customers.csv line 3: bad email: 'bob@' is not an email address" in text
    assert "orders.csv line 4: unknown currency: order 1003: Currency EUR is not the program's currency USD" in text
    assert "orders.csv line 5: unknown customer: order 1004: no customer with email zed@example.com" in text
    assert "orders.csv line 6: malformed row: line 6 has 3 fields, the header has 14" in text
    assert "order 1006: Paid at 'yesterday' is not a date" in text and "Total 'ten' is not a number" in text
    assert "order 1001 was already recorded for another customer with total 100.00" in text
    assert "ann@example.com has Customer ID 101, not 999" in text


def test_a_row_that_fails_in_the_database_rolls_back_alone(any_db: Database, program, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import order_events

    monkeypatch.setattr(imports, "BATCH_ROWS", 4)
    real_refund = order_events.refund_order

    def failing_refund(session, program, external_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if external_id == "1006":
            raise LedgerError("the refund service is broken for this order")
        return real_refund(session, program, external_id, *args, **kwargs)

    monkeypatch.setattr(order_events, "refund_order", failing_refund)
    with any_db.session(write=True) as session:
        create_customer(session, "ann@example.com", "Ann")
    rows = [order(f"#{1000 + n}", "ann@example.com", "10.00") for n in range(1, 11)]
    rows[5] = order("#1006", "ann@example.com", "10.00", status="partially_refunded", refunded="5.00")  # line 7
    rows[6] = order("#1007", "ann@example.com", "-1.00")  # line 8, in the same batch
    report = run_import(any_db, program, None, write_csv(tmp_path / "orders.csv", ORDER_HEADER, rows))

    assert reasons(report) == {("orders.csv", 7, "refused"), ("orders.csv", 8, "bad_total")}
    assert report.orders_recorded == 8 and report.refunds_recorded == 0
    with any_db.session() as session:
        recorded = set(session.execute(select(Order.external_id)).scalars())
        assert recorded == {f"{1000 + n}" for n in range(1, 11)} - {"1006", "1007"}
        # The order itself was written before its refund failed: the savepoint took it back, points too.
        assert session.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == "order:1006")).first() is None
        assert verify_balances(session) == []
    assert balances(any_db) == {"ann@example.com": 8 * 50}


def test_line_items_of_an_order_are_grouped(any_db: Database, program, tmp_path: Path) -> None:
    with any_db.session(write=True) as session:
        create_customer(session, "ann@example.com", "Ann")
    orders = write_csv(tmp_path / "orders.csv", ORDER_HEADER, [
        order("#2001", "ann@example.com", "247.00", item="Linden lounge chair", price="149.00", sku="OE-CH-001"),
        line("#2001", "ann@example.com", "Pebble table lamp", "1", "79.00", "OE-LT-002"),
        line("#2001", "ann@example.com", "Coaster", "2", "9.50"),
        order("#2002", "ann@example.com", "79.00"),
        order("#2003", "ann@example.com", "30.00", item="Candle", qty="2", price="10.00"),
        line("#2003", "ann@example.com", "Match box", "1", "10.00"),
        order("#2004", "ann@example.com", "20.00"),               # line 8
        ["#2004", "ann@example.com", "1", "Broken row"],          # line 9: spoils the whole order #2004
        line("#2004", "ann@example.com", "Lamp", "1", "10.00"),   # line 10
        order("#2005", "ann@example.com", "15.00"),               # line 11
    ])
    report = run_import(any_db, program, None, orders)
    assert report.order_rows == 10
    assert (report.orders_recorded, report.rejected) == (4, 1)
    (rejection,) = report.rejections
    assert (rejection.line, rejection.reason) == (8, "malformed_row")
    assert rejection.message == "order 2004 (lines 8-10): line 9 has 4 fields, the header has 14"
    with any_db.session() as session:
        lines = session.execute(
            select(Order.external_id, OrderLine.title, OrderLine.quantity, OrderLine.unit_price, OrderLine.sku)
            .join(OrderLine, OrderLine.order_id == Order.id).order_by(OrderLine.id)
        ).all()
        totals = dict(session.execute(select(Order.external_id, Order.total)).all())
    assert [tuple(map(str, row)) for row in lines] == [
        ("2001", "Linden lounge chair", "1", "149.00", "OE-CH-001"),
        ("2001", "Pebble table lamp", "1", "79.00", "OE-LT-002"),
        ("2001", "Coaster", "2", "9.50", "None"),
        ("2002", "Pebble table lamp", "1", "79.00", "OE-LT-002"),
        ("2003", "Candle", "2", "10.00", "OE-LT-002"),
        ("2003", "Match box", "1", "10.00", "None"),
        ("2005", "Pebble table lamp", "1", "15.00", "OE-LT-002"),
    ]
    assert set(totals) == {"2001", "2002", "2003", "2005"}


def test_an_order_of_endless_rows_is_refused_without_holding_them(sqlite_db: Database, program, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_ORDER_ROWS", 3)
    with sqlite_db.session(write=True) as session:
        create_customer(session, "ann@example.com")
    rows = [order("#1", "ann@example.com", "50.00")] + [line("#1", "ann@example.com", "Lamp", "1", "10.00")] * 4
    report = run_import(sqlite_db, program, None, write_csv(tmp_path / "orders.csv", ORDER_HEADER,
                                                            rows + [order("#2", "ann@example.com", "10.00")]))
    assert report.orders_recorded == 1 and report.order_rows == 6
    assert [str(r) for r in report.rejections] == [
        "orders.csv line 2: malformed row: order 1 (lines 2-6): more than 3 rows share this order Name"]


def test_refunds_and_cancellations_take_back_points_pro_rata(any_db: Database, program, tmp_path: Path) -> None:
    with any_db.session(write=True) as session:
        create_customer(session, "ann@example.com", "Ann")
    first = write_csv(tmp_path / "orders.csv", ORDER_HEADER, [
        order("#3001", "ann@example.com", "100.00", when="2026-02-01 10:00:00 +0000"),
        order("#3002", "ann@example.com", "100.00", when="2026-02-02 10:00:00 +0000",
              status="partially_refunded", refunded="25.00"),
        order("#3003", "ann@example.com", "80.00", when="2026-02-03 10:00:00 +0000", status="refunded"),
        order("#3004", "ann@example.com", "60.00", when="2026-02-04 10:00:00 +0000",
              cancelled="2026-02-05 09:00:00 +0000"),
        order("#3005", "ann@example.com", "70.00", when="2026-02-06 10:00:00 +0000", status="voided",
              cancelled="2026-02-06 11:00:00 +0000"),
    ])
    report = run_import(any_db, program, None, first)
    assert report.rejected == 0, format_report(report)
    assert (report.orders_recorded, report.refunds_recorded, report.cancellations) == (4, 2, 1)
    assert report.orders_skipped == {"voided": 1}
    # Bronze all along (5 points per $1): 500 kept; 500 less a quarter; 400 all back; 300 back on cancel.
    assert balances(any_db) == {"ann@example.com": 500 + 375}
    with any_db.session() as session:
        statuses = dict(session.execute(select(Order.external_id, Order.status)).all())
        refund_entry = session.execute(
            select(LedgerEntry).where(LedgerEntry.idempotency_key == "refund:3002:import-refund-25.00")
        ).scalar_one()
    assert statuses == {"3001": "paid", "3002": "partially_refunded", "3003": "refunded", "3004": "cancelled"}
    assert (refund_entry.points, refund_entry.kind) == (-125, "reverse")
    assert refund_entry.created_at == datetime(2026, 2, 2, 10, tzinfo=timezone.utc)  # dated with its order

    assert run_import(any_db, program, None, first).refunds_replayed == 2
    assert balances(any_db) == {"ann@example.com": 875}

    # A later export: the rest of #3002 was refunded too. Only the difference is taken back, once.
    later = write_csv(tmp_path / "orders-later.csv", ORDER_HEADER, [
        order("#3002", "ann@example.com", "100.00", when="2026-02-02 10:00:00 +0000", status="refunded",
              refunded="100.00"),
    ])
    for _ in range(2):
        run_import(any_db, program, None, later)
        assert balances(any_db) == {"ann@example.com": 500}
    # An export that shows less refunded than the store already took back is a conflict, not a change.
    older = write_csv(tmp_path / "orders-older.csv", ORDER_HEADER, [
        order("#3002", "ann@example.com", "100.00", when="2026-02-02 10:00:00 +0000",
              status="partially_refunded", refunded="10.00"),
    ])
    report = run_import(any_db, program, None, older)
    assert reasons(report) == {("orders-older.csv", 2, "bad_refund")}
    assert balances(any_db) == {"ann@example.com": 500}
    with any_db.session() as session:
        assert verify_balances(session) == []


def test_orders_with_nothing_to_record_are_skipped_not_rejected(sqlite_db: Database, program, tmp_path: Path) -> None:
    with sqlite_db.session(write=True) as session:
        create_customer(session, "ann@example.com")
    orders = write_csv(tmp_path / "orders.csv", ORDER_HEADER, [
        order("#1", "ann@example.com", "0.00"),                                   # free (100% discount)
        order("#2", "ann@example.com", "10.00", status="pending"),
        order("#3", "ann@example.com", "10.00", status="Partially paid"),
        order("#4", "", "10.00", status="voided", when="not even a date"),       # never paid: not read further
        order("#5", "ann@example.com", "10.00", status="authorized"),
    ])
    report = run_import(sqlite_db, program, None, orders)
    assert report.rejected == 0 and report.orders_recorded == 0
    assert report.orders_skipped == {"zero total": 1, "pending": 1, "partially_paid": 1, "voided": 1, "authorized": 1}
    assert "5 skipped (authorized 1, partially_paid 1, pending 1, voided 1, zero total 1)" in format_report(report)


def test_a_file_missing_columns_is_refused_before_anything_is_written(any_db: Database, program, tmp_path: Path) -> None:
    customers = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER, [customer("ann@example.com")])
    header = [name for name in ORDER_HEADER if name not in ("Total", "Currency")]
    orders = write_csv(tmp_path / "orders.csv", header, [["#1"] + [""] * (len(header) - 1)])
    with pytest.raises(ImportFileError) as refused:
        run_import(any_db, program, customers, orders)
    assert "orders.csv: not a Shopify order export: missing columns Currency, Total" in str(refused.value)
    assert balances(any_db) == {}

    partial_lines = write_csv(tmp_path / "lines.csv", ["Name", "Email", "Financial Status", "Currency", "Total",
                                                      "Created at", "Lineitem name"], [])
    with pytest.raises(ImportFileError, match="missing columns Lineitem quantity, Lineitem price"):
        run_import(any_db, program, None, partial_lines)
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ImportFileError, match="the file is empty"):
        run_import(any_db, program, tmp_path / "empty.csv", None)
    with pytest.raises(ImportFileError, match="cannot be read"):
        run_import(any_db, program, tmp_path / "nowhere.csv", None)


def test_headers_match_whatever_their_case_and_spacing(any_db: Database, program, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes("\ufeff  EMAIL ,first   name,LAST NAME,Customer Id\r\nAnn@Example.com,Ann,Lee,'55\r\n".encode())
    report = run_import(any_db, program, path, None)
    assert report.customers_created == 1 and report.rejected == 0
    with any_db.session() as session:
        ann = session.execute(select(Customer)).scalar_one()
    assert (ann.email, ann.first_name, ann.last_name, ann.external_id) == ("ann@example.com", "Ann", "Lee", "55")


def test_existing_customers_are_matched_not_duplicated(any_db: Database, program, tmp_path: Path) -> None:
    with any_db.session(write=True) as session:
        create_customer(session, "ann@example.com")  # joined through the bot: no name, no Shopify id yet
    rows = [customer("ANN@example.com", "101", "Ann", "Lee"), customer("bea@example.com", "102", "Bea")]
    path = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER, rows)
    report = run_import(any_db, program, path, None)
    assert (report.customers_created, report.customers_existing, report.customers_updated) == (1, 1, 1)
    again = run_import(any_db, program, path, None)
    assert (again.customers_created, again.customers_existing, again.customers_updated) == (0, 2, 0)
    # The shopper changed their email in the store: matched by Customer ID, the email follows.
    moved = write_csv(tmp_path / "moved.csv", CUSTOMER_HEADER, [customer("bea.new@example.com", "102", "Bea")])
    assert run_import(any_db, program, moved, None).customers_updated == 1
    with any_db.session() as session:
        rows = session.execute(select(Customer.email, Customer.external_id, Customer.first_name).order_by(Customer.id)).all()
    assert [tuple(row) for row in rows] == [("ann@example.com", "101", "Ann"), ("bea.new@example.com", "102", "Bea")]
    assert balances(any_db) == {"ann@example.com": 0, "bea.new@example.com": 100}  # signup bonus for new ones only


def test_malformed_csv_is_rejected_row_by_row(sqlite_db: Database, program, tmp_path: Path) -> None:
    with sqlite_db.session(write=True) as session:
        create_customer(session, "ann@example.com", "Ann")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ORDER_HEADER)
    writer.writerow(order("#1", "ann@example.com", "10.00"))                            # 2
    content = buffer.getvalue().encode()
    content += b"#2,ann@example.com,paid,x\x00y\n"                                        # 3 NUL byte
    content += ",".join(order("#3", "ann@example.com", "10.00", item="L\xe9mpara")).encode("latin-1") + b"\n"  # 4
    content += ",".join(order("#4", "ann@example.com", "10.00", item="x" * 140_000)).encode() + b"\n"  # 5 huge field
    content += b"#5," + b"y" * (csv_stream.MAX_LINE_BYTES + 10) + b"\n"                     # 6 huge line
    content += ",".join(order("#6", "ann@example.com", "10.00")).encode() + b"\n"        # 7
    content += b'#7,ann@example.com,"paid\n#8,ann@example.com\n'                          # 8-9 unclosed quote to the end
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    report = run_import(sqlite_db, program, None, path)
    assert report.orders_recorded == 2
    assert {(r.line, r.reason) for r in report.rejections} == {
        (3, "malformed_row"), (4, "malformed_row"), (5, "malformed_row"), (6, "malformed_row"), (8, "malformed_row"),
    }
    messages = {r.line: r.message for r in report.rejections}
    assert "line contains NUL" in messages[3]
    assert "not UTF-8" in messages[4]
    assert "field larger than field limit" in messages[5]
    assert "longer than 1,048,576 bytes" in messages[6]
    assert messages[8] == "lines 8-9 has 3 fields, the header has 14 (an unclosed quote?)"


def test_files_are_told_apart_by_their_header(sqlite_db: Database, program, tmp_path: Path) -> None:
    assert classify_files([DEMO / "orders.csv", DEMO / "customers.csv"]) == (DEMO / "customers.csv", DEMO / "orders.csv")
    assert classify_files([DEMO / "orders.csv"]) == (None, DEMO / "orders.csv")
    other = write_csv(tmp_path / "products.csv", ["Handle", "Title", "Variant SKU"], [])
    with pytest.raises(ImportFileError, match="neither a Shopify customer export"):
        classify_files([other])
    with pytest.raises(ImportFileError, match="two orders files"):
        classify_files([DEMO / "orders.csv", DEMO / "orders.csv"])
    with pytest.raises(ImportFileError, match="nothing to import"):
        classify_files([])


def test_import_command_exit_codes_and_progress_bar(sqlite_db: Database, program, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = import_command([DEMO / "orders.csv", DEMO / "customers.csv"], database=sqlite_db, program=program,
                          out=out, err=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert "10 created" in out.getvalue() and "19 recorded" in out.getvalue() and "rejected: none" in out.getvalue()
    assert "100%" in err.getvalue()  # the progress bar reached the end

    bad = write_csv(tmp_path / "orders.csv", ORDER_HEADER, [order("#9", "nobody@example.com")])
    out = io.StringIO()
    assert import_command([], orders=bad, database=sqlite_db, program=program, out=out, err=io.StringIO()) == 1
    assert "unknown customer: 1" in out.getvalue()

    err = io.StringIO()
    unusable = write_csv(tmp_path / "broken.csv", ["Name", "Email", "Financial Status"], [])
    assert import_command([unusable], database=sqlite_db, program=program, out=io.StringIO(), err=err) == 2
    assert "missing columns Currency, Total, Created at" in err.getvalue() and "nothing was imported" in err.getvalue()


def test_a_customers_file_given_as_orders_is_named_for_what_it_is(sqlite_db: Database, program) -> None:
    with pytest.raises(ImportFileError, match="it looks like a Shopify customer export"):
        run_import(sqlite_db, program, None, DEMO / "customers.csv")


def test_a_database_failure_stops_the_command_with_exit_2(program) -> None:
    unreachable = Database("postgresql://postgres@127.0.0.1:1/nowhere")
    err = io.StringIO()
    try:
        code = import_command([DEMO / "customers.csv"], database=unreachable, program=program, out=io.StringIO(), err=err)
    finally:
        unreachable.dispose()
    assert code == 2
    assert "the store database failed during the import" in err.getvalue()
    assert "run the same command again to finish" in err.getvalue()


def test_progress_reports_growing_byte_counts(sqlite_db: Database, program, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "BATCH_ROWS", 7)
    calls: list = []
    run_import(sqlite_db, program, DEMO / "customers.csv", DEMO / "orders.csv",
               progress=lambda done, total, rows: calls.append((done, total, rows)))
    total = (DEMO / "customers.csv").stat().st_size + (DEMO / "orders.csv").stat().st_size
    assert len(calls) >= 6
    assert calls[0] == (0, total, 0) and calls[-1] == (total, total, 40)
    assert all(a[0] <= b[0] and a[2] <= b[2] for a, b in zip(calls, calls[1:]))
    assert len({done for done, _, _ in calls}) >= 6


def _orders_file(path: Path, rows: int) -> Path:
    """Mostly unpaid orders (cheap to read, nothing to write), one in 1,000 paid, one in 1,000 refused."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ORDER_HEADER)
        for n in range(rows):
            status, currency = ("paid", "USD") if n % 1000 == 0 else ("paid", "EUR") if n % 1000 == 500 else ("pending", "USD")
            writer.writerow(order(f"#{n}", f"c{n % 5}@example.com", "10.00", status=status, currency=currency))
    return path


def _peak_import_memory(tmp_path: Path, program, rows: int) -> int:
    database = Database(f"sqlite:///{tmp_path / f'memory-{rows}.db'}")
    database.create_schema()
    with database.session(write=True) as session:
        for n in range(5):
            create_customer(session, f"c{n}@example.com")
    path = _orders_file(tmp_path / f"orders-{rows}.csv", rows)
    tracemalloc.start()
    try:
        report = run_import(database, program, None, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        database.dispose()
    assert (report.order_rows, report.orders_recorded, report.rejected) == (rows, rows // 1000, rows // 1000)
    return peak


def test_memory_does_not_grow_with_the_file(tmp_path: Path, program) -> None:
    _peak_import_memory(tmp_path, program, 2_000)  # warm up: imports and SQLAlchemy's statement caches
    small = _peak_import_memory(tmp_path, program, 20_000)
    large = _peak_import_memory(tmp_path, program, 200_000)
    assert large < 2 * small, (small, large)
    assert large < 8 * 1024 * 1024


# --- batched against one by one ------------------------------------------------------------------------


def _apply_one_by_one(session, program, states, *, now=None):  # type: ignore[no-untyped-def]
    """The reference: every state through apply_order_state, each in its own savepoint (the API's way)."""
    from sqlalchemy.exc import DataError, IntegrityError

    from bot import order_events

    outcomes = []
    for state in states:
        try:
            with session.begin_nested():
                result = order_events.apply_order_state(session, program, state, update_tier=False, now=now)
        except (LedgerError, IntegrityError, DataError) as error:
            outcomes.append(order_events.BatchOutcome(error=error))
        else:
            outcomes.append(order_events.BatchOutcome.of(result))
    return outcomes


def _tiers_one_by_one(session, program, customer_ids, now, reason, poster):  # type: ignore[no-untyped-def]
    from bot.loyalty.tiers import TierRecompute, recompute_tier

    results = []
    for customer_id in sorted(set(customer_ids)):
        try:
            with session.begin_nested():
                change = recompute_tier(session, program, customer_id, now, reason, poster)
        except LedgerError as error:
            results.append(TierRecompute(customer_id, error=error))
        else:
            results.append(TierRecompute(customer_id, change))
    return results


def _history(seed: int, names: range, customers: int) -> List[List[str]]:
    """A store's orders, deterministic: amounts that carry customers across tiers, dates out of order, line
    items, partial and full refunds, cancellations, and rows the store cannot take among them."""
    import random

    rng = random.Random(seed)
    rows: List[List[str]] = []
    for number in names:
        email = f"c{rng.randrange(customers)}@example.com"
        when = datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() + rng.randrange(0, 680 * 86_400)
        stamp = datetime.fromtimestamp(when, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")
        total = f"{rng.randrange(500, 40_000) / 100:.2f}"
        kind = rng.random()
        if kind < 0.08:
            refunded = f"{float(total) * rng.choice((0.1, 0.25, 0.5)):.2f}"
            rows.append(order(f"#{number}", email, total, when=stamp, status="partially_refunded", refunded=refunded))
        elif kind < 0.12:
            rows.append(order(f"#{number}", email, total, when=stamp, status="refunded"))
        elif kind < 0.15:
            rows.append(order(f"#{number}", email, total, when=stamp, cancelled=stamp))
        elif kind < 0.17:
            rows.append(order(f"#{number}", email, "-3.00", when=stamp))  # bad total
        elif kind < 0.19:
            rows.append(order(f"#{number}", "nobody@example.com", total, when=stamp))  # unknown customer
        elif kind < 0.21 and number > names.start + 5:
            # The id of an earlier order with other facts: a duplicate the store refuses.
            rows.append(order(f"#{number - 5}", email, "1.23", when=stamp))
        elif kind < 0.28:
            half = f"{float(total) / 2:.2f}"
            rows.append(order(f"#{number}", email, f"{2 * float(half):.2f}", when=stamp, price=half, item="Vase"))
            rows.append(line(f"#{number}", email, "Lamp", "1", half, "OE-LT-002"))
        else:
            rows.append(order(f"#{number}", email, total, when=stamp))
    return rows


def _store(database: Database) -> Dict[str, object]:
    """Everything an import writes, per customer email (ids differ between stores)."""
    from bot.models import OrderRefund, Referral

    with database.session() as session:
        email_of = dict(session.execute(select(Customer.id, Customer.email)).all())
        customers = {c.email: (c.points_balance, c.tier_name, c.tier_held_until, c.last_activity_at)
                     for c in session.execute(select(Customer)).scalars()}
        ledger = sorted((email_of[e.customer_id], e.kind, e.points, e.reason, e.source, e.source_ref,
                         e.idempotency_key, e.created_at, e.expires_at)
                        for e in session.execute(select(LedgerEntry)).scalars())
        orders = sorted((o.external_id, email_of[o.customer_id], o.total, o.refunded_total, o.currency, o.status,
                         o.points_earned, o.placed_at, o.shipping_address_hash, o.ip_hash,
                         tuple((line.sku, line.title, line.quantity, line.unit_price) for line in o.lines),
                         tuple((r.external_id, r.amount, r.points_due, r.points_reversed, r.created_at)
                               for r in o.refunds))
                        for o in session.execute(select(Order)).scalars())
        changes = sorted(((email_of[t.customer_id], t.from_tier, t.to_tier, t.direction, t.reason, t.created_at,
                           t.announced_at) for t in session.execute(select(TierChange)).scalars()), key=repr)
        referrals = sorted((email_of[r.friend_customer_id], r.status, r.reason, r.order_external_id, r.points_awarded)
                           for r in session.execute(select(Referral)).scalars())
        assert verify_balances(session) == []
    return {"customers": customers, "ledger": ledger, "orders": orders, "tier_changes": changes,
            "referrals": referrals}


def test_batched_import_ends_exactly_as_one_by_one(tmp_path: Path, program, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same exports imported through the order events' batch and state by state (the way the store API
    applies each order): every customer's balance, tier, ledger, orders, refunds, tier changes and referral
    end the same, with the same rejections; then a later export on top of each, and a rerun that changes
    nothing."""
    from bot.advocacy.referrals import register_signup
    from bot.models import ReferralCode

    monkeypatch.setattr(imports, "BATCH_ROWS", 37)  # many batches, orders of one customer spread over them
    customers_csv = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER,
                              [customer(f"c{n}@example.com", str(900 + n)) for n in range(30)])
    first = write_csv(tmp_path / "orders.csv", ORDER_HEADER, _history(5, range(1000, 1400), 30))
    later = write_csv(tmp_path / "orders-later.csv", ORDER_HEADER, _history(6, range(2000, 2150), 30))

    def import_all(database: Database, one_by_one: bool) -> List[imports.ImportReport]:
        with monkeypatch.context() as patch:
            if one_by_one:
                patch.setattr(imports, "apply_order_states", _apply_one_by_one)
                patch.setattr(imports, "recompute_tiers", _tiers_one_by_one)
            reports = [run_import(database, program, customers_csv, None)]
            with database.session(write=True) as session:
                # c3 was referred by c4: their first order decides the referral (one by one in both ways).
                advocate = session.execute(select(Customer).where(Customer.email == "c4@example.com")).scalar_one()
                friend = session.execute(select(Customer).where(Customer.email == "c3@example.com")).scalar_one()
                session.add(ReferralCode(customer_id=advocate.id, code="K7QM2XDA9P", created_at=NOW))
                session.flush()
                register_signup(session, program, friend.id, "K7QM2XDA9P", None, NOW)
            reports.append(run_import(database, program, None, first))
            reports.append(run_import(database, program, None, later))
            reports.append(run_import(database, program, customers_csv, first))
            return reports

    stores = {}
    results = {}
    for one_by_one in (True, False):
        database = Database(f"sqlite:///{tmp_path / f'store-{one_by_one}.db'}")
        database.create_schema()
        try:
            results[one_by_one] = import_all(database, one_by_one)
            stores[one_by_one] = _store(database)
        finally:
            database.dispose()

    by_row, batched = stores[True], stores[False]
    for part in ("customers", "ledger", "orders", "tier_changes", "referrals"):
        assert batched[part] == by_row[part], part
    for reference, report in zip(results[True], results[False]):
        assert format_report(report) == format_report(reference)
        assert sorted(map(str, report.rejections)) == sorted(map(str, reference.rejections))
    _, imported, _, rerun = results[False]
    # The history did what it is meant to exercise.
    assert {"bad_total", "unknown_customer", "duplicate_order"} <= set(imported.rejected_by_reason)
    assert imported.refunds_recorded > 10 and imported.cancellations > 5 and imported.tier_changes > 5
    assert {tier for _, tier, *_ in batched["customers"].values()} >= {"Silver", "Gold", "Platinum"}
    assert len({points for *_, points in batched["ledger"]}) > 1
    assert batched["referrals"][0][1] == "rewarded"
    assert any(lines for *_, lines, _ in batched["orders"])
    # The rerun of the first export changes nothing and says so.
    assert (rerun.orders_recorded, rerun.points_awarded, rerun.refunds_recorded, rerun.cancellations) == (0, 0, 0, 0)
    assert rerun.orders_replayed == imported.orders_recorded
    assert rerun.refunds_replayed == imported.refunds_recorded
    assert rerun.cancellations_replayed == imported.cancellations


def test_a_bad_order_in_the_middle_of_a_batch_is_refused_alone(sqlite_db: Database, program, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Batched orders that the checks, the database or a concurrent writer refuse are reported with their
    line and reason; the rest of their batch goes in."""
    from bot import order_events

    with sqlite_db.session(write=True) as session:
        create_customer(session, "ann@example.com", "Ann")
    rows = [order(f"#{5000 + n}", "ann@example.com", "10.00") for n in range(20)]
    rows[4] = order("#5004", "ann@example.com", "10.00", when="1999-05-01 10:00:00 +0000")  # line 6: too old
    rows[9] = order("#5003", "ann@example.com", "11.00")  # line 11: #5003 again with another total
    report = run_import(sqlite_db, program, None, write_csv(tmp_path / "orders.csv", ORDER_HEADER, rows))
    assert reasons(report) == {("orders.csv", 6, "refused"), ("orders.csv", 11, "duplicate_order")}
    assert "order 5004: placed_at 1999-05-01T10:00:00+00:00 is not between 2000-01-01 and now" in format_report(report)
    assert report.orders_recorded == 18
    assert balances(sqlite_db) == {"ann@example.com": 18 * 50}

    # The batch's bulk insert fails (here: an order another writer recorded meanwhile, which the batch did not
    # see): its orders are applied one by one instead, and only that one is refused.
    real_write = order_events.PaidOrderBatch.write
    more = [order(f"#{6000 + n}", "ann@example.com", "10.00") for n in range(6)]
    more[2] = order("#6002", "ann@example.com", "12.00")

    def concurrent_writer_first(batch):  # type: ignore[no-untyped-def]
        if batch.pending("6002"):
            with batch.session.begin_nested():
                batch.session.add(Order(external_id="6002", customer_id=1, total=1, refunded_total=0,
                                        currency="USD", status="paid", points_earned=0, placed_at=NOW))
        return real_write(batch)

    monkeypatch.setattr(order_events.PaidOrderBatch, "write", concurrent_writer_first)
    report = run_import(sqlite_db, program, None, write_csv(tmp_path / "more.csv", ORDER_HEADER, more))
    assert reasons(report) == {("more.csv", 4, "duplicate_order")}
    assert report.orders_recorded == 5
    assert balances(sqlite_db) == {"ann@example.com": 23 * 50}
    with sqlite_db.session() as session:
        assert verify_balances(session) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_into_a_log_is_a_line_per_tenth_and_a_bar_only_on_a_terminal() -> None:
    log = io.StringIO()  # a file or a pipe: no terminal
    bar = csv_stream.ProgressBar(log)
    for done in range(0, 1_001, 7):  # many small steps, as batches report them
        bar(done, 1_000, done // 10)
    bar(1_000, 1_000, 100)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert [line.split()[1] for line in lines] == [f"{tenth * 10}%" for tenth in range(11)]
    assert lines[-1].startswith("import 100% 100 rows")

    terminal = _Terminal()
    bar = csv_stream.ProgressBar(terminal)
    bar(500, 1_000, 50)
    bar(1_000, 1_000, 100)
    bar.close()
    assert "\r" in terminal.getvalue() and "100%" in terminal.getvalue()  # redrawn in place


def _join_one_by_one(session, program, joinings, *, email_may_change=False, at=None,  # type: ignore[no-untyped-def]
                     store_id_label="external_id"):
    """The reference: every joining through join, each in its own savepoint (the store API's way)."""
    from sqlalchemy.exc import DataError, IntegrityError

    from bot import membership
    from bot.identity import IdentityError

    outcomes = []
    for joining in joinings:
        try:
            with session.begin_nested():
                joined = membership.join(session, program, joining, email_may_change=email_may_change, at=at,
                                         store_id_label=store_id_label)
        except (IdentityError, LedgerError, IntegrityError, DataError) as error:
            outcomes.append(membership.JoinOutcome(error=error))
        else:
            outcomes.append(membership.JoinOutcome.of(joined))
    return outcomes


def _customers_table(database: Database) -> List[tuple]:
    with database.session() as session:
        return sorted((c.email or "", c.external_id or "", c.first_name, c.last_name, c.points_balance,
                       c.last_activity_at, c.created_at) for c in session.execute(select(Customer)).scalars())


def test_batched_joins_end_exactly_as_one_by_one(tmp_path: Path, program, monkeypatch: pytest.MonkeyPatch) -> None:
    """A customers export through the membership batch (join_many) and row by row through join: the same
    customers, ledger and rejections — new customers, members a chat or the API made before, the same email or
    Customer ID twice in the file and across batches, conflicts, an email the store changed — and a rerun that
    changes nothing."""
    from bot import membership
    from bot.identity import create_customer

    assert program.earning.signup > 0
    joins: List[str] = []  # rows the batch sent through join one by one
    monkeypatch.setattr(imports, "BATCH_ROWS", 7)  # many batches: repeats land in the same batch and in later ones
    rows = [customer(f"n{n}@example.com", str(100 + n), first=f"N{n}") for n in range(40)]
    rows += [
        customer("N3@Example.com", "103", first="Other"),  # n3 again (other case): nothing to fill in
        customer("n5@example.com", "999"),  # n5 has Customer ID 105: a conflict
        customer("fresh@example.com", "104"),  # 104 is n4's: the store changed n4's email
        customer("n4@example.com", "104"),  # n4's old email, now nobody's: 104 is fresh@'s → changed back
        customer("twice@example.com", "500"), customer("twice@example.com", "500"),  # twice in a batch
        customer("twice@example.com", "501"),  # its email with another id: a conflict
        customer("chat@example.com", "700", first="Chat"),  # a chat made customer 700 (no email yet)
        customer("known@example.com", "", first="", last=""),  # the API made them, without names
        customer("known@example.com", "800", first="Kay", last="Known"),  # their id and names filled in
        customer("apionly@example.com", "801"),  # the API made them with another id
        customer("no-email", "802"),  # the parser refuses it
        customer("n7@example.com", "107", first="N7"),
        customer("n6@example.com", "110"),  # 110 is n10's, n6 has 106: a conflict
    ]
    rows += [customer(f"late{n}@example.com", str(300 + n)) for n in range(12)]
    customers_csv = write_csv(tmp_path / "customers.csv", CUSTOMER_HEADER, rows)

    def import_twice(database: Database, one_by_one: bool) -> List[imports.ImportReport]:
        with database.session(write=True) as session:
            create_customer(session, None, store_id="700")
            create_customer(session, "known@example.com")
            create_customer(session, "apionly@example.com", store_id="9001")
        with monkeypatch.context() as patch:
            if one_by_one:
                patch.setattr(imports, "join_many", _join_one_by_one)
            else:
                real_join = membership.join

                def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
                    joins.append(args[2].facts.email)
                    return real_join(*args, **kwargs)
                patch.setattr(membership, "join", counted)
            return [run_import(database, program, customers_csv, None) for _ in range(2)]

    stores, results = {}, {}
    for one_by_one in (True, False):
        database = Database(f"sqlite:///{tmp_path / f'joins-{one_by_one}.db'}")
        database.create_schema()
        try:
            results[one_by_one] = import_twice(database, one_by_one)
            stores[one_by_one] = (_customers_table(database), _store(database))
        finally:
            database.dispose()

    (by_row_customers, by_row), (batched_customers, batched) = stores[True], stores[False]
    assert batched_customers == by_row_customers
    for part in ("customers", "ledger"):
        assert batched[part] == by_row[part], part
    for reference, report in zip(results[True], results[False]):
        assert format_report(report) == format_report(reference)
        assert sorted(map(str, report.rejections)) == sorted(map(str, reference.rejections))
    first, rerun = results[False]
    # The file did what it is meant to exercise.
    assert first.rejected_by_reason["conflicting_customer"] >= 3 and first.rejected_by_reason["bad_email"] == 1
    assert first.customers_created == 40 + 12 + 2  # and twice@, and chat@ (joined now that the store names them)
    assert first.customers_updated == 3  # n4's email twice, known@'s id and names
    assert first.signup_points == first.customers_created * program.earning.signup
    assert {("n4@example.com", "104"), ("chat@example.com", "700"), ("known@example.com", "800")} <= {
        (email, store_id) for email, store_id, *_ in batched_customers}
    # The rerun changes nothing and says so.
    assert (rerun.customers_created, rerun.signup_points) == (0, 0)
    assert rerun.customers_existing + rerun.rejected == first.customer_rows
    # Only the rows that need it went through join one by one: not the plain new and unchanged members.
    assert not any(email.startswith(("n1", "late")) for email in joins) and len(joins) < 2 * 16, joins
