"""/api/reward-codes/{code}: the store checks a code at checkout and marks it used, once."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.loyalty.ledger import post_entry
from bot.loyalty.rewards import redeem
from bot.models import RewardCode
from tests.web.conftest import Api

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def issue(api: Api, program, reward_id: str = "five-off", points: int = 5000) -> str:
    """A customer with `points`, who redeems `reward_id`; its code."""
    customer_id = api.customer()
    with api.db.session(write=True) as session:
        post_entry(session, customer_id, points, kind="earn", reason="test", source="test", idempotency_key="seed")
        return redeem(session, program, customer_id, reward_id).code.code


def stored(api: Api, code: str) -> RewardCode:
    with api.db.session() as session:
        return session.execute(select(RewardCode).where(RewardCode.code == code)).scalar_one()


def use(order_id: str = "2001", **fields: object) -> dict:
    return {"action": "use", "order_id": order_id, **fields}


async def test_a_valid_code_is_described(sqlite_api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(sqlite_api, program, "twenty-off")
    reply = await sqlite_api.get(f"/api/reward-codes/{code}")
    assert reply.status == 200, reply.json
    assert reply.json["valid"] is True and reply.json["code"] == code and reply.json["status"] == "issued"
    assert (reply.json["kind"], reply.json["value"], reply.json["min_order"]) == ("amount_off", "20.00", "40.00")
    assert reply.json["title"] == "$20 off" and reply.json["currency"] == "USD"
    assert reply.json["customer_id"] == stored(sqlite_api, code).customer_id
    assert reply.json["expires_at"] == "2026-12-15T12:00:00+00:00"
    # Typed as a shopper reads it out: lower case, no dashes.
    typed = code.replace("-", "").lower()
    assert (await sqlite_api.get(f"/api/reward-codes/{typed}")).json["code"] == code


async def test_an_unknown_code_is_404_with_reason_unknown(sqlite_api: Api) -> None:
    for method in (sqlite_api.get("/api/reward-codes/RW-0000-0000-0000"),
                   sqlite_api.post("/api/reward-codes/RW-0000-0000-0000", use())):
        reply = await method
        assert reply.status == 404 and reply.json["reason"] == "unknown" and reply.json["valid"] is False
        assert reply.json["error"] == "code_refused" and reply.json["detail"]


async def test_a_code_is_used_once_and_again_for_the_same_order_is_fine(api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(api, program)
    first = await api.post(f"/api/reward-codes/{code}", use(order_total="80.00", currency="USD"))
    assert first.status == 200, first.json
    assert first.json["status"] == "used" and first.json["used_order_ref"] == "2001"
    assert first.json["used_at"] == NOW.isoformat()

    clock.advance(minutes=5)
    same_order = await api.post(f"/api/reward-codes/{code}", use(order_total="80.00"))
    assert same_order.status == 200 and same_order.json["used_at"] == NOW.isoformat()

    other_order = await api.post(f"/api/reward-codes/{code}", use("2002"))
    assert other_order.status == 409 and other_order.json["reason"] == "used" and "2001" in other_order.json["detail"]

    check = await api.get(f"/api/reward-codes/{code}")
    assert check.status == 200 and check.json["valid"] is False and check.json["reason"] == "used"
    row = stored(api, code)
    assert (row.status, row.used_order_ref, row.used_at) == ("used", "2001", NOW)


async def test_two_checkouts_racing_for_one_code_one_wins(api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(api, program)
    replies = await asyncio.gather(*(api.post(f"/api/reward-codes/{code}", use(f"30{i}")) for i in range(8)))
    assert sorted(reply.status for reply in replies) == [200] + [409] * 7, [r.json for r in replies]
    winner = next(reply for reply in replies if reply.status == 200)
    assert stored(api, code).used_order_ref == winner.json["used_order_ref"]


async def test_an_expired_code_is_refused_and_stays_unused(api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(api, program)
    clock.advance(days=183)  # valid 6 months
    check = await api.get(f"/api/reward-codes/{code}")
    assert check.status == 200 and check.json["valid"] is False and check.json["reason"] == "expired"
    refused = await api.post(f"/api/reward-codes/{code}", use())
    assert refused.status == 410 and refused.json["reason"] == "expired"
    assert stored(api, code).status == "issued"


async def test_a_basket_below_the_minimum_or_in_another_currency_is_refused(api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(api, program, "twenty-off")  # minimum order 40
    low = await api.get(f"/api/reward-codes/{code}", params={"order_total": "39.99"})
    assert low.status == 200 and low.json["valid"] is False and low.json["reason"] == "below_minimum"
    assert (await api.get(f"/api/reward-codes/{code}", params={"order_total": "40"})).json["valid"] is True
    foreign = await api.get(f"/api/reward-codes/{code}", params={"order_total": "50", "currency": "EUR"})
    assert foreign.json["reason"] == "wrong_currency"

    refused = await api.post(f"/api/reward-codes/{code}", use(order_total="30.00"))
    assert refused.status == 422 and refused.json["reason"] == "below_minimum"
    refused = await api.post(f"/api/reward-codes/{code}", use(order_total="50.00", currency="EUR"))
    assert refused.status == 422 and refused.json["reason"] == "wrong_currency"
    assert stored(api, code).status == "issued"
    assert (await api.post(f"/api/reward-codes/{code}", use(order_total=50))).status == 200


async def test_bad_requests_are_400_and_change_nothing(sqlite_api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(sqlite_api, program)
    for body in ({"action": "cancel", "order_id": "1"}, {"order_id": "1"}, {"action": "use"},
                 use(""), use("x" * 65), use(order_total="lots"), use(order_total=-1), use(currency="dollars")):
        reply = await sqlite_api.post(f"/api/reward-codes/{code}", body)
        assert reply.status == 400, (body, reply.json)
    for params in ({"order_total": "abc"}, {"order_total": "-5"}, {"currency": "E"}):
        assert (await sqlite_api.get(f"/api/reward-codes/{code}", params=params)).status == 400
    assert stored(sqlite_api, code).status == "issued"
    assert (await sqlite_api.get(f"/api/reward-codes/{code}", token=None)).status == 401
    assert (await sqlite_api.post(f"/api/reward-codes/{code}", use(), token="nope")).status == 401
    assert stored(sqlite_api, code).status == "issued"


async def test_the_code_is_not_written_to_the_log(sqlite_api: Api, program, clock, capsys) -> None:
    clock.at(NOW)
    code = issue(sqlite_api, program)
    capsys.readouterr()
    await sqlite_api.get(f"/api/reward-codes/{code}")
    await sqlite_api.post(f"/api/reward-codes/{code}", use())
    err = capsys.readouterr().err
    assert "/api/reward-codes/{code}" in err and code not in err


async def test_expiry_is_measured_on_the_project_clock(sqlite_api: Api, program, clock) -> None:
    clock.at(NOW)
    code = issue(sqlite_api, program)
    expires = stored(sqlite_api, code).expires_at
    clock.at(expires - timedelta(seconds=1))
    assert (await sqlite_api.get(f"/api/reward-codes/{code}")).json["valid"] is True
    clock.at(expires)
    assert (await sqlite_api.get(f"/api/reward-codes/{code}")).json["reason"] == "expired"
