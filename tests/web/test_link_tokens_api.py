"""POST /api/link-tokens: the store's account page gets a one-time code that links a chat."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from bot.identity import customer_for_sender
from bot.identity.linking import redeem_link_code
from bot.models import LinkCode
from tests.web.conftest import Api

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


async def test_a_link_code_is_issued_for_a_customer_and_links_a_chat_once(api: Api, clock) -> None:
    clock.at(NOW)
    customer_id = api.customer()
    reply = await api.post("/api/link-tokens", {"customer": {"email": "ann@example.com"}})
    assert reply.status == 201, reply.json
    code = reply.json["code"]
    assert reply.json["customer_id"] == customer_id
    assert reply.json["expires_at"] == (NOW + timedelta(minutes=15)).isoformat()
    assert reply.json["telegram_start_parameter"] == "link_" + code.replace("-", "")
    with api.db.session(write=True) as session:
        assert redeem_link_code(session, code, "telegram", "tg-1", NOW).status == "linked"
        assert redeem_link_code(session, code, "instagram", "ig-1", NOW).status == "used"
        assert customer_for_sender(session, "telegram", "tg-1").id == customer_id


async def test_a_new_code_replaces_the_previous_one(api: Api, clock) -> None:
    clock.at(NOW)
    api.customer()
    first = (await api.post("/api/link-tokens", {"customer": {"email": "ann@example.com"}})).json["code"]
    second = (await api.post("/api/link-tokens", {"customer": {"email": "ann@example.com"}})).json["code"]
    assert first != second
    with api.db.session(write=True) as session:
        assert redeem_link_code(session, first, "telegram", "tg-2", NOW).status == "expired"
        assert redeem_link_code(session, second, "telegram", "tg-2", NOW).status == "linked"


async def test_link_codes_need_the_token_a_known_customer_and_a_well_formed_body(api: Api) -> None:
    api.customer()
    assert (await api.post("/api/link-tokens", {"customer": {"id": 1}}, token=None)).status == 401
    assert (await api.post("/api/link-tokens", {"customer": {"id": 1}}, token="wrong")).status == 401
    unknown = await api.post("/api/link-tokens", {"customer": {"email": "nobody@example.com"}})
    assert unknown.status == 404 and unknown.json["error"] == "unknown_customer"
    assert (await api.post("/api/link-tokens", {"customer": "ann"})).status == 400
    assert (await api.post("/api/link-tokens", data=b"{not json")).status == 400
    assert (await api.post("/api/link-tokens", data=b"[1, 2]")).status == 400
    with api.db.session() as session:
        assert session.execute(select(LinkCode)).first() is None, "nothing issued for a refused request"
