"""POST /api/orders: paid orders earn once, refunds and cancellations take back pro rata, and nothing is
written by a request that is refused."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot.loyalty.rewards import redeem
from bot.models import LedgerEntry, Order, OrderLine, OrderRefund
from tests.web.conftest import MAX_BODY_BYTES, TOKEN, Api

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def paid(order_id: str = "1001", total: object = "100.00", **fields: object) -> dict:
    body = {"event": "paid", "order_id": order_id, "customer": {"email": "ann@example.com"}, "total": total,
            "currency": "USD", "placed_at": "2026-06-15T10:00:00+00:00"}
    body.update(fields)
    return body


def refunded(refund_id: str, amount: str, order_id: str = "1001", currency: str = "USD") -> dict:
    return {"event": "refunded", "order_id": order_id, "refund_id": refund_id, "amount": amount, "currency": currency}


async def test_a_paid_order_earns_once_however_often_it_is_replayed(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    body = paid(lines=[{"sku": "OE-CH-001", "title": "Linden lounge chair", "quantity": 1, "unit_price": "89.00"},
                       {"title": "Pebble lamp", "quantity": 2, "unit_price": 5.5}])
    first = await api.post("/api/orders", body)
    assert first.status == 201, first.json
    assert first.json["created"] is True and first.json["points_awarded"] == 500 and first.json["balance"] == 500
    assert first.json["order_id"] == "1001" and first.json["customer_id"] == customer_id
    assert first.json["total"] == "100.00" and first.json["status"] == "paid" and first.json["tier"] == "Bronze"

    for _ in range(10):
        replay = await api.post("/api/orders", body)
        assert replay.status == 200 and replay.json["created"] is False and replay.json["points_awarded"] == 0
        assert replay.json["balance"] == 500

    assert api.balance(customer_id) == 500
    assert (api.count(Order), api.count(LedgerEntry), api.count(OrderLine)) == (1, 1, 2)
    api.assert_ledger_consistent()


async def test_ten_simultaneous_deliveries_of_one_order_award_it_once(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    replies = await asyncio.gather(*(api.post("/api/orders", paid()) for _ in range(10)))
    assert sorted(reply.status for reply in replies) == [200] * 9 + [201], [r.json for r in replies]
    assert sum(reply.json["points_awarded"] for reply in replies) == 500
    assert api.balance(customer_id) == 500
    assert (api.count(Order), api.count(LedgerEntry)) == (1, 1)
    api.assert_ledger_consistent()


async def test_customers_are_named_by_id_email_or_store_id(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer("Bo@Example.com")
    from bot.models import Customer

    with sqlite_api.db.session(write=True) as session:
        session.get(Customer, customer_id).external_id = "shopify-77"
    for order_id, ref in (("1", {"id": customer_id}), ("2", {"email": "BO@example.com "}), ("3", {"external_id": "shopify-77"})):
        reply = await sqlite_api.post("/api/orders", paid(order_id, "10.00", customer=ref))
        assert reply.status == 201 and reply.json["customer_id"] == customer_id
    assert sqlite_api.balance(customer_id) == 150


async def test_the_same_order_id_with_other_facts_is_a_conflict(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    api.customer("bo@example.com")
    assert (await api.post("/api/orders", paid())).status == 201
    other_total = await api.post("/api/orders", paid(total="120.00"))
    other_customer = await api.post("/api/orders", paid(customer={"email": "bo@example.com"}))
    for reply in (other_total, other_customer):
        assert reply.status == 409 and reply.json["error"] == "conflict", reply.json
        assert "already recorded" in reply.json["detail"]
    assert api.balance(customer_id) == 500 and api.count(Order) == 1


async def test_unknown_customer_is_404_and_writes_nothing(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    for ref in ({"email": "nobody@example.com"}, {"id": 999}, {"external_id": "x"}):
        reply = await sqlite_api.post("/api/orders", paid(customer=ref))
        assert reply.status == 404 and reply.json["error"] == "unknown_customer", reply.json
    assert sqlite_api.count(Order) == 0


@pytest.mark.parametrize("total, status", [
    ("0", 422), ("0.00", 422), ("-5.00", 422), (-5, 422), ("10.001", 422), (10.001, 422), ("2000000.00", 422),
    (10 ** 30, 422), (True, 400), ("NaN", 400), ("Infinity", 400), ("ten", 400), ("", 400), ([10], 400),
    ({"amount": 10}, 400), (None, 400),
])
async def test_impossible_totals_are_refused(sqlite_api: Api, clock, total, status) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    reply = await sqlite_api.post("/api/orders", paid(total=total))
    assert reply.status == status, reply.json
    assert reply.json["error"] == ("unprocessable" if status == 422 else "invalid_request")
    assert reply.json["detail"]
    assert sqlite_api.count(Order) == 0 and sqlite_api.balance(customer_id) == 0


@pytest.mark.parametrize("total, points", [("59.00", 295), (59, 295), (59.1, 295), ("1e2", 500), (" 20.5 ", 102)])
async def test_amounts_as_strings_or_numbers(sqlite_api: Api, clock, total, points) -> None:
    clock.at(NOW)
    sqlite_api.customer()
    reply = await sqlite_api.post("/api/orders", paid(total=total))
    assert reply.status == 201 and reply.json["points_awarded"] == points, reply.json


async def test_json_nan_and_malformed_bodies_are_400(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer()
    raw_nan = json.dumps(paid()).replace('"100.00"', "NaN").encode()
    for data in (raw_nan, b'{"event": "paid",', b"[1, 2]", b"", b"\xff\xfe{", b'"paid"'):
        reply = await sqlite_api.post("/api/orders", data=data)
        assert reply.status == 400, (data, reply.json)
        assert reply.json["error"] in ("malformed_json", "invalid_request") and reply.json["detail"]
    assert sqlite_api.count(Order) == 0


async def test_currency_must_be_the_programs(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer()
    mismatch = await sqlite_api.post("/api/orders", paid(currency="EUR"))
    assert mismatch.status == 422 and "currency" in mismatch.json["detail"]
    assert (await sqlite_api.post("/api/orders", paid(currency=None))).status == 400
    assert (await sqlite_api.post("/api/orders", paid(currency="dollars"))).status == 400
    assert (await sqlite_api.post("/api/orders", paid(currency="usd"))).status == 201
    assert sqlite_api.count(Order) == 1


async def test_placed_at_needs_a_zone_and_must_not_be_in_the_future(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    naive = await sqlite_api.post("/api/orders", paid(placed_at="2026-06-15T10:00:00"))
    assert naive.status == 400 and "time zone" in naive.json["detail"]
    assert (await sqlite_api.post("/api/orders", paid(placed_at="yesterday"))).status == 400
    assert (await sqlite_api.post("/api/orders", paid(placed_at=1718445600))).status == 400
    assert (await sqlite_api.post("/api/orders", paid(placed_at="0001-01-01T00:00:00+05:00"))).status == 400
    assert (await sqlite_api.post("/api/orders", paid(placed_at="0001-01-02T00:00:00+00:00"))).status == 422
    assert (await sqlite_api.post("/api/orders", paid(placed_at="2026-06-16T12:00:00+00:00"))).status == 422
    assert sqlite_api.count(Order) == 0
    zulu = await sqlite_api.post("/api/orders", paid(placed_at="2026-06-15T09:30:00Z"))
    assert zulu.status == 201 and zulu.json["placed_at"] == "2026-06-15T09:30:00+00:00"
    default = await sqlite_api.post("/api/orders", paid("1002", placed_at=None))
    assert default.status == 201 and default.json["placed_at"] == NOW.isoformat()
    assert sqlite_api.balance(customer_id) == 1000


@pytest.mark.parametrize("fields, status", [
    ({"event": "shipped"}, 400), ({"event": None}, 400), ({"order_id": ""}, 400), ({"order_id": True}, 400),
    ({"order_id": "x" * 65}, 400), ({"customer": "ann@example.com"}, 400), ({"customer": {}}, 400),
    ({"customer": {"id": "5"}}, 400), ({"customer": {"id": 1, "email": "ann@example.com"}}, 400),
    ({"lines": "chair"}, 400), ({"lines": [{"title": "Chair", "quantity": "1", "unit_price": "5.00"}]}, 400),
    ({"lines": [{"title": "Chair", "quantity": 1}]}, 400), ({"lines": [{"quantity": 1, "unit_price": "5.00"}]}, 400),
    ({"lines": [{"title": "Chair", "quantity": 0, "unit_price": "5.00"}]}, 422),
    ({"lines": [{"title": "Chair", "quantity": 1, "unit_price": "5.001"}]}, 422),
    ({"lines": [{"title": "Chair", "sku": "s" * 65, "quantity": 1, "unit_price": "5.00"}]}, 400),
])
async def test_wrong_shapes_and_values(sqlite_api: Api, clock, fields, status) -> None:
    clock.at(NOW)
    sqlite_api.customer()
    reply = await sqlite_api.post("/api/orders", paid(**fields))
    assert reply.status == status, reply.json
    assert sqlite_api.count(Order) == 0


async def test_refunds_take_back_points_pro_rata(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    assert (await api.post("/api/orders", paid())).json["points_awarded"] == 500

    first = await api.post("/api/orders", refunded("r1", "30.00"))
    assert first.status == 201, first.json
    assert (first.json["points_reversed"], first.json["points_written_off"], first.json["balance"]) == (150, 0, 350)
    assert first.json["status"] == "partially_refunded" and first.json["refunded_total"] == "30.00"

    replay = await api.post("/api/orders", refunded("r1", "30.00"))
    assert replay.status == 200 and replay.json["created"] is False and replay.json["balance"] == 350
    changed = await api.post("/api/orders", refunded("r1", "31.00"))
    assert changed.status == 409 and changed.json["error"] == "conflict"

    second = await api.post("/api/orders", refunded("r2", "70.00"))
    assert second.status == 201 and second.json["points_reversed"] == 350 and second.json["balance"] == 0
    assert second.json["status"] == "refunded"

    beyond = await api.post("/api/orders", refunded("r3", "1.00"))
    assert beyond.status == 422 and "exceeds" in beyond.json["detail"]
    other_currency = await api.post("/api/orders", refunded("r4", "1.00", currency="EUR"))
    assert other_currency.status == 422
    unknown = await api.post("/api/orders", refunded("r1", "1.00", order_id="9999"))
    assert unknown.status == 404 and unknown.json["error"] == "unknown_order"

    assert api.balance(customer_id) == 0 and api.count(OrderRefund) == 2
    with api.db.session() as session:
        assert [entry.points for entry in session.execute(select(LedgerEntry).order_by(LedgerEntry.id)).scalars()] == [
            500, -150, -350]
    api.assert_ledger_consistent()


async def test_a_refund_of_points_already_spent_is_written_off(api: Api, clock, program) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    await api.post("/api/orders", paid())
    with api.db.session(write=True) as session:
        redeem(session, program, customer_id, "five-off")  # spends all 500
    reply = await api.post("/api/orders", refunded("r1", "100.00"))
    assert reply.status == 201
    assert (reply.json["points_reversed"], reply.json["points_written_off"], reply.json["balance"]) == (0, 500, 0)
    api.assert_ledger_consistent()


async def test_cancelling_takes_back_what_is_left_once(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    await api.post("/api/orders", paid())
    await api.post("/api/orders", refunded("r1", "30.00"))
    cancel = {"event": "cancelled", "order_id": "1001"}
    first = await api.post("/api/orders", cancel)
    assert first.status == 201 and first.json["points_reversed"] == 350 and first.json["status"] == "cancelled"
    again = await api.post("/api/orders", cancel)
    assert again.status == 200 and again.json["created"] is False
    after = await api.post("/api/orders", refunded("r2", "10.00"))
    assert after.status == 422 and "cancelled" in after.json["detail"]
    missing = await api.post("/api/orders", {"event": "cancelled", "order_id": "404"})
    assert missing.status == 404
    assert api.balance(customer_id) == 0
    api.assert_ledger_consistent()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Bearer ", f"Basic {TOKEN}", TOKEN,
                                    f"Bearer {TOKEN}x", "Bearer störe"])
async def test_a_missing_or_forged_token_is_401_and_writes_nothing(sqlite_api: Api, clock, capsys, header) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    headers = {"Authorization": header} if header is not None else {}
    response = await sqlite_api.client.post("/api/orders", json=paid(), headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthorized"
    assert sqlite_api.count(Order) == 0 and sqlite_api.balance(customer_id) == 0
    # Unknown routes under /api/ are not revealed to a caller without the token either.
    assert (await sqlite_api.client.get("/api/nothing-here", headers=headers)).status == 401
    assert TOKEN not in capsys.readouterr().err


async def test_without_a_configured_token_the_api_is_off(sqlite_db, program, tmp_path) -> None:
    from tests.web.conftest import started, web_settings

    async for api in started(sqlite_db, program, web_settings(tmp_path, STORE_API_TOKEN="")):
        reply = await api.post("/api/orders", paid())
        assert reply.status == 503 and reply.json["error"] == "api_disabled" and "STORE_API_TOKEN" in reply.json["detail"]
        assert (await api.get("/health", token=None)).json == {"status": "ok"}
        assert api.count(Order) == 0


async def test_an_oversized_body_is_413_and_writes_nothing(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer()
    lines = [{"title": "x" * 200, "quantity": 1, "unit_price": "1.00"} for _ in range(MAX_BODY_BYTES // 200 + 1)]
    reply = await sqlite_api.post("/api/orders", paid(lines=lines))
    assert reply.status == 413 and reply.json["error"] == "payload_too_large"
    assert str(MAX_BODY_BYTES) in reply.json["detail"]
    assert sqlite_api.count(Order) == 0


async def test_health_unknown_routes_and_methods_answer_json(sqlite_api: Api) -> None:
    assert (await sqlite_api.get("/health", token=None)).json == {"status": "ok"}
    missing = await sqlite_api.get("/api/nothing-here")
    assert missing.status == 404 and missing.json["error"] == "not_found"
    wrong_method = await sqlite_api.get("/api/orders")
    assert wrong_method.status == 405 and "POST" in wrong_method.headers["Allow"]
    root = await sqlite_api.client.get("/", allow_redirects=False)  # a person opening the printed address
    assert root.status == 302 and root.headers["Location"] == "/console/"


async def test_an_unexpected_failure_is_a_json_500_that_rolls_back(sqlite_api: Api, clock, monkeypatch, capsys) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    from bot.web import api as api_module

    def balance_then_crash(session, customer_id):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug after the order was written")

    # The order and its points are written before the response is built: the crash must undo them.
    monkeypatch.setattr(api_module, "balance", balance_then_crash)
    reply = await sqlite_api.post("/api/orders", paid())
    assert reply.status == 500 and reply.json["error"] == "internal_error"
    assert "bug after" not in reply.json["detail"]
    assert "web.request_failed" in capsys.readouterr().err
    assert sqlite_api.count(Order) == 0 and sqlite_api.count(LedgerEntry) == 0 and sqlite_api.balance(customer_id) == 0


@pytest.mark.parametrize("fields", [
    {"order_id": "10\x0001"}, {"customer": {"id": 2 ** 31}}, {"customer": {"email": "ann\x00@example.com"}},
    {"lines": [{"title": "Chair\x00", "quantity": 1, "unit_price": "5.00"}]},
])
async def test_values_the_database_would_choke_on_are_400_not_500(api: Api, clock, fields) -> None:
    clock.at(NOW)
    api.customer()
    reply = await api.post("/api/orders", paid(**fields))
    assert reply.status == 400, reply.json
    assert api.count(Order) == 0
