"""The store API's referral side: paid orders with discount codes, referral codes, shipping addresses and
client IPs; the fulfilled event; friend offer codes at checkout; new customers with a referral code."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict

import pytest
from sqlalchemy import select

from bot.advocacy.fingerprints import address_hash, fingerprint_key, ip_hash
from bot.advocacy.friend_offers import record_click
from bot.advocacy.referrals import referral_code_for
from bot.models import Customer, FriendOffer, LedgerEntry, Order, Referral, ReferralDecision
from tests.web.conftest import Api, web_settings

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
HOME = {"address1": "12 Oak Street", "address2": "Apt 4", "city": "Springfield", "province": "IL", "zip": "62704",
        "country": "US"}


def paid(order_id: str, email: str, total: Any = "60.00", **fields: Any) -> Dict[str, Any]:
    return {"event": "paid", "order_id": order_id, "customer": {"email": email}, "total": total, "currency": "USD",
            "placed_at": "2026-06-15T10:00:00+00:00", **fields}


async def advocate(api: Api) -> tuple:
    """Ann, who has ordered from home; (id, referral code)."""
    ann_id = api.customer("ann@example.com")
    reply = await api.post("/api/orders", paid("A1", "ann@example.com", "40.00", shipping_address=HOME,
                                               client_ip="203.0.113.7"))
    assert reply.status == 201 and "referral" not in reply.json, reply.json
    with api.db.session(write=True) as session:
        return ann_id, referral_code_for(session, ann_id, NOW).code


def offer_for(api: Api, program, code: str, ip: str = "198.51.100.20") -> str:
    with api.db.session(write=True) as session:
        return record_click(session, program, code, ip_hash(ip, b"x" * 32), "Mozilla/5.0", NOW).offer_code


async def test_a_friends_first_order_with_the_offer_pays_the_advocate(api: Api, program, clock, tmp_path: Path) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(api)
    offer = offer_for(api, program, code)
    api.customer("cleo@example.com")
    body = paid("F1", "cleo@example.com", discount_codes=["WELCOME", offer.lower()], client_ip="192.0.2.44",
                shipping_address="7 Elm Road, Shelbyville 62565")
    reply = await api.post("/api/orders", body)
    assert reply.status == 201, reply.json
    assert reply.json["referral"]["status"] == "rewarded" and reply.json["referral"]["advocate_points"] == 500
    assert set(reply.json["referral"]) == {"id", "status", "reason", "advocate_points"}
    assert api.balance(ann_id) == 200 + 500
    # Kept only as keyed hashes.
    key = fingerprint_key(web_settings(tmp_path))
    with api.db.session() as session:
        stored = session.execute(select(Order).where(Order.external_id == "F1")).scalar_one()
        assert stored.ip_hash == ip_hash("192.0.2.44", key)
        assert stored.shipping_address_hash == address_hash("7 elm rd shelbyville 62565", key)
        assert session.execute(select(FriendOffer)).scalar_one().status == "used"
    replay = await api.post("/api/orders", body)
    assert replay.status == 200 and "referral" not in replay.json
    assert api.balance(ann_id) == 700
    api.assert_ledger_consistent()


async def test_ten_simultaneous_deliveries_of_the_friends_order_credit_once(api: Api, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(api)
    api.customer("cleo@example.com")
    body = paid("F1", "cleo@example.com", referral_code=code, client_ip="192.0.2.44")
    replies = await asyncio.gather(*(api.post("/api/orders", body) for _ in range(10)))
    assert sorted(reply.status for reply in replies) == [200] * 9 + [201], [r.json for r in replies]
    assert [r.json["referral"]["status"] for r in replies if "referral" in r.json] == ["rewarded"]
    assert api.balance(ann_id) == 700
    assert api.count(Referral) == 1
    with api.db.session() as session:
        assert len(session.execute(select(LedgerEntry).where(LedgerEntry.source == "referral")).all()) == 1
    api.assert_ledger_consistent()


@pytest.mark.parametrize("fields, reason", [
    ({"shipping_address": {"address1": "12 oak st.", "address2": "apartment 4", "city": "springfield",
                           "zip": "62704", "province": "Illinois"}}, "self-referral: same shipping address"),
    ({"shipping_address": "12 OAK ST #4 SPRINGFIELD 62704"}, "self-referral: same shipping address"),
    ({"shipping_address": "14 Oak Street, Apt 4, Springfield 62704"}, None),  # the neighbours
    ({"client_ip": "203.0.113.7"}, "self-referral: same network (IP)"),
    ({"client_ip": "::ffff:203.0.113.7"}, "self-referral: same network (IP)"),
    ({"total": "29.99"}, "friend's first order $29.99 was below the $30 minimum"),
])
async def test_self_referrals_are_refused_with_their_reason(sqlite_api: Api, clock, fields, reason) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(sqlite_api)
    sqlite_api.customer("cleo@example.com")
    reply = await sqlite_api.post("/api/orders", paid("F1", "cleo@example.com", referral_code=code, **fields))
    assert reply.status == 201, reply.json
    if reason is None:
        assert reply.json["referral"]["status"] == "rewarded"
    else:
        assert reply.json["referral"] == {"id": reply.json["referral"]["id"], "status": "rejected", "reason": reason,
                                          "advocate_points": 0}
        assert sqlite_api.balance(ann_id) == 200


async def test_an_advocates_other_email_is_caught(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(sqlite_api)
    sqlite_api.customer("A.N.N+shop@example.com")
    reply = await sqlite_api.post("/api/orders", paid("F1", "a.n.n+shop@example.com", referral_code=code))
    assert reply.json["referral"]["reason"] == "self-referral: same email"


@pytest.mark.parametrize("fields, detail", [
    ({"discount_codes": "FRIEND-AAAA-AAAA"}, "discount_codes must be a list of strings"),
    ({"discount_codes": [1, 2]}, "discount_codes must be a list of strings"),
    ({"discount_codes": [f"C{i}" for i in range(11)]}, "at most 10"),
    ({"discount_codes": ["X" * 65]}, "longer than 64"),
    ({"discount_codes": ["A\x00B"]}, "NUL"),
    ({"referral_code": 12345}, "referral_code must be a string"),
    ({"referral_code": "K" * 33}, "longer than 32"),
    ({"shipping_address": 12}, "shipping_address must be an object"),
    ({"shipping_address": ["12 Oak Street"]}, "shipping_address must be an object"),
    ({"shipping_address": {"address1": 12}}, "address1 must be a string"),
    ({"shipping_address": {"name": "Ann"}}, "needs at least one of"),
    ({"shipping_address": "x" * 501}, "longer than 500"),
    ({"shipping_address": {"address1": "x" * 300, "address2": "y" * 201}}, "longer than 500"),
    ({"client_ip": "not-an-ip"}, "client_ip must be an IPv4 or IPv6 address"),
    ({"client_ip": "300.1.1.1"}, "client_ip must be an IPv4 or IPv6 address"),
    ({"client_ip": ["1.2.3.4"]}, "client_ip must be a string"),
])
async def test_garbage_in_the_referral_fields_is_400_and_writes_nothing(sqlite_api: Api, clock, fields, detail) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer("cleo@example.com")
    reply = await sqlite_api.post("/api/orders", paid("F1", "cleo@example.com", **fields))
    assert reply.status == 400 and reply.json["error"] == "invalid_request", reply.json
    assert detail in reply.json["detail"]
    assert sqlite_api.count(Order) == 0 and sqlite_api.balance(customer_id) == 0


async def test_unknown_codes_on_an_order_change_nothing_but_the_order(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer("cleo@example.com")
    reply = await sqlite_api.post("/api/orders", paid("F1", "cleo@example.com", referral_code="K7QM2XDA9P",
                                                      discount_codes=["FRIEND-AAAA-AAAA", "SUMMER"]))
    assert reply.status == 201 and "referral" not in reply.json and reply.json["points_awarded"] == 300
    assert sqlite_api.count(Referral) == 0


# --- refunds of the friend's order -------------------------------------------------------------------


def refunded(order_id: str, refund_id: str, amount: str) -> Dict[str, Any]:
    return {"event": "refunded", "order_id": order_id, "refund_id": refund_id, "amount": amount, "currency": "USD"}


async def test_refunding_the_friends_order_takes_the_advocates_reward_back(api: Api, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(api)
    api.customer("cleo@example.com")
    ordered = await api.post("/api/orders", paid("F1", "cleo@example.com", referral_code=code, client_ip="192.0.2.44"))
    referral_id = ordered.json["referral"]["id"]
    assert api.balance(ann_id) == 700
    kept = await api.post("/api/orders", refunded("F1", "r1", "20.00"))  # $40 kept: still qualifies
    assert kept.status == 201 and "referral" not in kept.json and api.balance(ann_id) == 700
    reply = await api.post("/api/orders", refunded("F1", "r2", "40.00"))
    assert reply.status == 201, reply.json
    assert (reply.json["status"], reply.json["points_reversed"], reply.json["balance"]) == ("refunded", 200, 0)
    assert reply.json["referral"] == {"id": referral_id, "status": "rejected", "advocate_points": 0,
                                      "reason": "friend's order F1 was refunded; 500 points taken back"}
    assert api.balance(ann_id) == 200
    replay = await api.post("/api/orders", refunded("F1", "r2", "40.00"))
    assert replay.status == 200 and replay.json["created"] is False and "referral" not in replay.json
    cancelled = await api.post("/api/orders", {"event": "cancelled", "order_id": "F1"})
    assert cancelled.status == 201 and "referral" not in cancelled.json
    assert api.balance(ann_id) == 200
    api.assert_ledger_consistent()


# --- fulfilled ---------------------------------------------------------------------------------------


async def test_an_order_is_fulfilled_once(api: Api, clock) -> None:
    clock.at(NOW)
    api.customer("cleo@example.com")
    await api.post("/api/orders", paid("F1", "cleo@example.com"))
    first = await api.post("/api/orders", {"event": "fulfilled", "order_id": "F1", "fulfilled_at": "2026-06-15T11:00:00Z"})
    assert first.status == 201 and first.json["fulfilled_at"] == "2026-06-15T11:00:00+00:00", first.json
    assert first.json["created"] is True and first.json["order_id"] == "F1"
    again = await api.post("/api/orders", {"event": "fulfilled", "order_id": "F1"})
    assert again.status == 200 and again.json["created"] is False
    assert again.json["fulfilled_at"] == "2026-06-15T11:00:00+00:00"
    unknown = await api.post("/api/orders", {"event": "fulfilled", "order_id": "nope"})
    assert unknown.status == 404 and unknown.json["error"] == "unknown_order"


async def test_a_fulfilment_time_is_checked(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer("cleo@example.com")
    await sqlite_api.post("/api/orders", paid("F1", "cleo@example.com"))
    for value, status in (("yesterday", 400), ("2026-06-15T11:00:00", 400), ("2027-01-01T00:00:00Z", 422)):
        reply = await sqlite_api.post("/api/orders", {"event": "fulfilled", "order_id": "F1", "fulfilled_at": value})
        assert reply.status == status, reply.json
    with sqlite_api.db.session() as session:
        assert session.execute(select(Order.fulfilled_at)).scalar_one() is None
    assert (await sqlite_api.post("/api/orders", {"event": "fulfilled"})).status == 400


async def test_a_fulfilment_carries_its_tracking(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer("cleo@example.com")
    await sqlite_api.post("/api/orders", paid("F1", "cleo@example.com"))
    shipped = {"event": "fulfilled", "order_id": "F1", "fulfilled_at": "2026-06-15T11:00:00Z"}
    first = await sqlite_api.post("/api/orders", shipped)
    assert first.status == 201 and first.json["tracking"] == {"company": None, "number": None, "url": None}
    tracked = {**shipped, "tracking": {"company": "UPS", "number": "1Z999AA10123456784",
                                       "url": "https://www.ups.com/track?tracknum=1Z999AA10123456784"}}
    added = await sqlite_api.post("/api/orders", tracked)
    assert added.status == 201 and added.json["tracking"]["number"] == "1Z999AA10123456784", added.json
    assert added.json["fulfilled_at"] == "2026-06-15T11:00:00+00:00"
    again = await sqlite_api.post("/api/orders", tracked)
    assert again.status == 200 and again.json["created"] is False
    for bad in ({"number": 5}, "1Z999", {"url": "javascript:alert(1)"}, {"company": "x" * 101}):
        reply = await sqlite_api.post("/api/orders", {**shipped, "tracking": bad})
        assert reply.status == 400, (bad, reply.json)


# --- friend offers at checkout -----------------------------------------------------------------------


async def test_a_friend_offer_is_checked_and_used_like_a_reward_code(api: Api, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(api)
    offer = offer_for(api, program, code)
    reply = await api.get(f"/api/reward-codes/{offer.lower()}", params={"order_total": "45.00"})
    assert reply.status == 200 and reply.json["valid"] is True, reply.json
    assert (reply.json["code"], reply.json["friend_offer"], reply.json["kind"], reply.json["value"]) == (
        offer, True, "percent_off", "10.00")
    assert reply.json["expires_at"] == (NOW + timedelta(days=30)).isoformat()
    cleo = {"email": "cleo@example.com"}  # not a customer yet: a new shopper at their first checkout
    used = await api.post(f"/api/reward-codes/{offer}", {"action": "use", "order_id": "F1", "customer": cleo})
    assert used.status == 200 and used.json["status"] == "used" and used.json["used_order_ref"] == "F1"
    assert (await api.post(f"/api/reward-codes/{offer}", {"action": "use", "order_id": "F1"})).status == 200
    again = await api.post(f"/api/reward-codes/{offer}", {"action": "use", "order_id": "F2"})
    assert again.status == 409 and again.json["reason"] == "used"
    check = await api.get(f"/api/reward-codes/{offer}")
    assert check.status == 200 and (check.json["valid"], check.json["reason"]) == (False, "used")


async def test_friend_offer_refusals(sqlite_api: Api, program, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(sqlite_api)
    offer = offer_for(sqlite_api, program, code)
    unknown = await sqlite_api.get("/api/reward-codes/FRIEND-AAAA-AAAA")
    assert unknown.status == 404 and unknown.json["reason"] == "unknown"
    assert (await sqlite_api.get("/api/reward-codes/FRIEND-nonsense")).status == 404
    # Ann has ordered before: her own friend offer is refused (own code), and so is anyone's who ordered.
    own = await sqlite_api.get(f"/api/reward-codes/{offer}", params={"customer_email": "ANN@example.com"})
    assert (own.json["valid"], own.json["reason"]) == (False, "own_code")
    bo_id = sqlite_api.customer("bo@example.com")
    await sqlite_api.post("/api/orders", paid("B1", "bo@example.com", "15.00"))
    veteran = await sqlite_api.get(f"/api/reward-codes/{offer}", params={"customer_id": str(bo_id)})
    assert (veteran.json["valid"], veteran.json["reason"]) == (False, "not_first_order")
    refused = await sqlite_api.post(f"/api/reward-codes/{offer}",
                                    {"action": "use", "order_id": "B2", "customer": {"id": bo_id}})
    assert refused.status == 422 and refused.json["reason"] == "not_first_order"
    bad = await sqlite_api.get(f"/api/reward-codes/{offer}", params={"customer_id": "abc"})
    assert bad.status == 400
    both = await sqlite_api.get(f"/api/reward-codes/{offer}", params={"customer_id": "1", "customer_email": "a@b.c"})
    assert both.status == 400
    clock.advance(days=31)
    expired = await sqlite_api.get(f"/api/reward-codes/{offer}")
    assert (expired.json["valid"], expired.json["reason"]) == (False, "expired")
    gone = await sqlite_api.post(f"/api/reward-codes/{offer}", {"action": "use", "order_id": "X1"})
    assert gone.status == 410 and gone.json["reason"] == "expired"
    with sqlite_api.db.session() as session:
        assert session.execute(select(FriendOffer.status)).scalar_one() == "issued"


# --- new customers with a referral code --------------------------------------------------------------


async def test_a_new_customer_with_a_referral_code_joins_with_an_offer(api: Api, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(api)
    reply = await api.post("/api/customers", {"email": "cleo@example.com", "referral_code": code.lower(),
                                              "client_ip": "192.0.2.44"})
    assert reply.status == 201, reply.json
    referral = reply.json["referral"]
    assert (referral["status"], referral["advocate_points"]) == ("joined", 0)
    assert referral["offer_code"].startswith("FRIEND-")
    with api.db.session() as session:
        stored = session.get(Referral, referral["id"])
        assert (stored.source, stored.friend_customer_id) == ("referral_code", reply.json["id"])
        assert [d.decision for d in session.execute(select(ReferralDecision)).scalars()] == ["joined"]
    # The first order decides it.
    ordered = await api.post("/api/orders", paid("F1", "cleo@example.com", client_ip="192.0.2.44"))
    assert ordered.json["referral"]["status"] == "rewarded" and api.balance(ann_id) == 700
    # An existing customer's code is ignored.
    existing = await api.post("/api/customers", {"email": "cleo@example.com", "referral_code": code})
    assert existing.status == 200 and "referral" not in existing.json


async def test_customer_referral_codes_that_cannot_count(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(sqlite_api)
    unknown = await sqlite_api.post("/api/customers", {"email": "cleo@example.com", "referral_code": "K7QM2XDA9P"})
    assert unknown.status == 201 and unknown.json["referral"] == {
        "id": None, "status": "rejected", "reason": "unknown referral code", "advocate_points": 0}
    own = await sqlite_api.post("/api/customers", {"email": "ann+2@example.com", "referral_code": code})
    assert (own.json["referral"]["status"], own.json["referral"]["reason"]) == ("rejected", "self-referral: same email")
    home = await sqlite_api.post("/api/customers", {"email": "dan@example.com", "referral_code": code,
                                                    "client_ip": "203.0.113.7"})
    assert home.json["referral"]["reason"] == "self-referral: same network (IP)"
    for body in ({"email": "eve@example.com", "client_ip": "localhost"},
                 {"email": "eve@example.com", "referral_code": ["K7QM2XDA9P"]}):
        reply = await sqlite_api.post("/api/customers", body)
        assert reply.status == 400, reply.json
    with sqlite_api.db.session() as session:
        assert session.execute(select(Customer).where(Customer.email == "eve@example.com")).first() is None


async def test_sign_ups_per_network_are_limited(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    ann_id, code = await advocate(sqlite_api)
    statuses = []
    for index in range(11):
        reply = await sqlite_api.post("/api/customers", {"email": f"s{index}@example.com", "referral_code": code,
                                                         "client_ip": f"2001:db8:5:6::{index + 1}"})
        statuses.append(reply.json["referral"]["status"])
    assert statuses == ["joined"] * 10 + ["rejected"]
    assert "offer_code" not in reply.json["referral"]
