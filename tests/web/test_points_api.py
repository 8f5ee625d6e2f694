"""POST /api/points (earning rules and the program's custom actions) and POST /api/customers (joining)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot.identity import customer_for_sender, link_chat_to_store_customer
from bot.models import Customer, LedgerEntry
from tests.web.conftest import Api

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def points(action: str, **fields: object) -> dict:
    return {"customer": {"email": "ann@example.com"}, "action": action, **fields}


async def test_a_custom_action_is_credited_once_per_key(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    body = points("newsletter_signup", idempotency_key="nl-ann")
    first = await api.post("/api/points", body)
    assert first.status == 201, first.json
    assert (first.json["points_awarded"], first.json["balance"], first.json["created"]) == (50, 50, True)
    for _ in range(10):
        replay = await api.post("/api/points", body)
        assert replay.status == 200 and replay.json["created"] is False and replay.json["points_awarded"] == 0
    another = await api.post("/api/points", points("newsletter_signup", idempotency_key="nl-ann-2"))
    assert another.status == 201 and another.json["balance"] == 100
    assert api.balance(customer_id) == 100 and api.count(LedgerEntry) == 2
    api.assert_ledger_consistent()


async def test_simultaneous_credits_of_one_occasion_pay_once(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    body = points("profile_completed", idempotency_key="profile")
    replies = await asyncio.gather(*(api.post("/api/points", body) for _ in range(10)))
    assert sorted(reply.status for reply in replies) == [200] * 9 + [201], [r.json for r in replies]
    assert api.balance(customer_id) == 25 and api.count(LedgerEntry) == 1
    api.assert_ledger_consistent()


async def test_built_in_rules(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    follow = await sqlite_api.post("/api/points", points("social_follow", reference="Instagram"))
    assert follow.status == 201 and follow.json["points_awarded"] == 50
    assert (await sqlite_api.post("/api/points", points("social_follow", reference="instagram"))).status == 200
    assert (await sqlite_api.post("/api/points", points("social_follow", reference="tiktok"))).status == 201
    birthday = await sqlite_api.post("/api/points", points("birthday"))
    assert birthday.status == 201 and birthday.json["points_awarded"] == 500
    assert (await sqlite_api.post("/api/points", points("birthday"))).json["created"] is False
    quiz = await sqlite_api.post("/api/points", points("quiz_completion", reference="sofa-finder"))
    assert quiz.status == 201 and quiz.json["points_awarded"] == 25
    review = await sqlite_api.post("/api/points", points("review_photo", reference="rev-9"))
    assert review.status == 201 and review.json["points_awarded"] == 200
    assert sqlite_api.balance(customer_id) == 50 + 50 + 500 + 25 + 200
    sqlite_api.assert_ledger_consistent()


@pytest.mark.parametrize("body, status, error", [
    (points("social_follow", reference="myspace"), 422, "unprocessable"),
    (points("social_follow"), 422, "unprocessable"),
    (points("quiz_completion"), 422, "unprocessable"),
    (points("newsletter_signup"), 400, "invalid_request"),
    (points("newsletter_signup", idempotency_key=""), 400, "invalid_request"),
    (points("newsletter_signup", idempotency_key="k" * 201), 400, "invalid_request"),
    (points("custom", idempotency_key="k"), 422, "unknown_action"),
    (points("free_money", idempotency_key="k"), 422, "unknown_action"),
    (points(""), 400, "invalid_request"),
    (points(5), 400, "invalid_request"),
    ({"action": "birthday"}, 400, "invalid_request"),
    ({"customer": {"email": "nobody@example.com"}, "action": "birthday"}, 404, "unknown_customer"),
])
async def test_refusals(sqlite_api: Api, clock, body, status, error) -> None:
    clock.at(NOW)
    customer_id = sqlite_api.customer()
    reply = await sqlite_api.post("/api/points", body)
    assert (reply.status, reply.json["error"]) == (status, error), reply.json
    assert sqlite_api.balance(customer_id) == 0 and sqlite_api.count(LedgerEntry) == 0


async def test_a_replayed_key_for_a_changed_amount_is_a_conflict(sqlite_db, program, tmp_path, clock) -> None:
    """The merchant changed what an action is worth: the old key must not be paid again at the new rate."""
    from dataclasses import replace

    from tests.web.conftest import started, web_settings

    clock.at(NOW)
    async for api in started(sqlite_db, program, web_settings(tmp_path)):
        api.customer()
        assert (await api.post("/api/points", points("newsletter_signup", idempotency_key="k"))).status == 201
    richer = replace(program, earning=replace(program.earning, custom_actions={"newsletter_signup": 80}))
    async for api in started(sqlite_db, richer, web_settings(tmp_path)):
        reply = await api.post("/api/points", points("newsletter_signup", idempotency_key="k"))
        assert reply.status == 409 and reply.json["error"] == "conflict"
        assert api.count(LedgerEntry) == 1


async def test_joining_awards_signup_points_once(api: Api, clock) -> None:
    clock.at(NOW)
    body = {"email": "Zoe@Example.com", "first_name": "Zoe", "last_name": "Lin", "external_id": "shop-1",
            "birthday": "1990-04-23"}
    first = await api.post("/api/customers", body)
    assert first.status == 201, first.json
    assert (first.json["email"], first.json["external_id"], first.json["points_awarded"], first.json["balance"]) == (
        "zoe@example.com", "shop-1", 100, 100)
    again = await api.post("/api/customers", {"email": "zoe@example.com "})
    assert again.status == 200 and again.json["created"] is False and again.json["id"] == first.json["id"]
    assert again.json["balance"] == 100 and again.json["points_awarded"] == 0
    with api.db.session() as session:
        customer = session.execute(select(Customer)).scalar_one()
        assert (customer.first_name, customer.birthday.isoformat()) == ("Zoe", "1990-04-23")
    api.assert_ledger_consistent()


async def test_simultaneous_sign_ups_make_one_member(api: Api, clock) -> None:
    clock.at(NOW)
    replies = await asyncio.gather(*(api.post("/api/customers", {"email": "sam@example.com"}) for _ in range(6)))
    assert sorted(reply.status for reply in replies) == [200] * 5 + [201], [r.json for r in replies]
    assert api.count(Customer) == 1 and api.count(LedgerEntry) == 1
    api.assert_ledger_consistent()


async def test_the_store_id_is_added_once_and_never_reassigned(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    await sqlite_api.post("/api/customers", {"email": "a@example.com"})
    added = await sqlite_api.post("/api/customers", {"email": "a@example.com", "external_id": 42})
    assert added.status == 200 and added.json["external_id"] == "42"
    changed = await sqlite_api.post("/api/customers", {"email": "a@example.com", "external_id": "43"})
    assert changed.status == 409
    taken = await sqlite_api.post("/api/customers", {"email": "b@example.com", "external_id": "42"})
    assert taken.status == 409 and sqlite_api.count(Customer) == 1
    await sqlite_api.post("/api/customers", {"email": "b@example.com"})
    stolen = await sqlite_api.post("/api/customers", {"email": "b@example.com", "external_id": "42"})
    assert stolen.status == 409
    with sqlite_api.db.session() as session:
        assert session.execute(select(Customer.external_id).order_by(Customer.id)).scalars().all() == ["42", None]


@pytest.mark.parametrize("body", [
    {}, {"email": ""}, {"email": "not-an-email"}, {"email": 5}, {"email": "a@example.com", "first_name": 7},
    {"email": "a@example.com", "birthday": "23/04/1990"}, {"email": "x" * 320 + "@example.com"},
    {"email": "a@example.com", "external_id": ""},
])
async def test_bad_customer_bodies_are_400(sqlite_api: Api, body) -> None:
    reply = await sqlite_api.post("/api/customers", body)
    assert reply.status == 400, reply.json
    assert sqlite_api.count(Customer) == 0


async def test_one_idempotency_key_used_by_two_customers_credits_both(sqlite_api: Api, clock) -> None:
    clock.at(NOW)
    sqlite_api.customer("ann@example.com")
    sqlite_api.customer("bo@example.com")
    ann = await sqlite_api.post("/api/points", points("newsletter_signup", idempotency_key="spring-list"))
    bo = await sqlite_api.post("/api/points", {**points("newsletter_signup", idempotency_key="spring-list"),
                                                "customer": {"email": "bo@example.com"}})
    assert (ann.status, bo.status) == (201, 201), bo.json


async def test_a_shopper_the_widget_met_first_joins_with_their_store_id(sqlite_api: Api, clock) -> None:
    """The widget signs a store's shopper in by their store id before the store has told us their email: it
    makes a customer with that store id and no email. When the store then registers that shopper, the
    customer the widget made is the one who joins (email and name filled in, signup points) — not a 409."""
    clock.at(NOW)
    widget_customer = link_chat_to_store_customer("widget", "widget-conversation-1", "shop-77",
                                                  database=sqlite_api.db)
    joined = await sqlite_api.post("/api/customers", {"email": "Zoe@example.com", "external_id": "shop-77",
                                                      "first_name": "Zoe"})
    assert joined.status == 201, joined.json
    assert (joined.json["id"], joined.json["email"], joined.json["external_id"], joined.json["first_name"]) == (
        widget_customer, "zoe@example.com", "shop-77", "Zoe")
    assert (joined.json["points_awarded"], joined.json["balance"]) == (100, 100)
    again = await sqlite_api.post("/api/customers", {"email": "zoe@example.com", "external_id": "shop-77"})
    assert again.status == 200 and again.json["id"] == widget_customer and again.json["points_awarded"] == 0
    assert sqlite_api.count(Customer) == 1
    with sqlite_api.db.session() as session:
        assert customer_for_sender(session, "widget", "widget-conversation-1").id == widget_customer
    sqlite_api.assert_ledger_consistent()
