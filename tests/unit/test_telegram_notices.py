"""Queued chat notices pushed to shoppers linked on Telegram (routed by bot.outbox, claimed through
bot.notices.claim_for_channel by the channel's NoticeDelivery), against a real database and the fake Bot API. Ticks are driven directly (`run_once`) or
with a short injected interval; nothing waits for the 30 s default."""
from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, List, Optional, Set, Tuple

import aiohttp
import pytest
from sqlalchemy import select

from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.models import ChannelIdentity, OutboundMessage
from bot.notices import CHAT_NOTICE_KINDS, claim_chat_notices, claim_for_channel, mark_failed, queue_notice
from bot.outbox.policy import ProactivePolicy
from bot.outbox.service import route_due
from bot.settings import Settings, SettingsError
from tests.fakes.telegram_api import FakeTelegramApi
from channels.telegram.config import SECRET_HEADER
from tests.unit.test_telegram_channel import SECRET, TOKEN, _serve, _stop

CHAT = "1111111"
LAMP = "Your review of the Pebble table lamp is live — 200 points added"
# These tests are about the channel: no quiet hours, no cap (tests/unit/test_outbox.py has those).
ANY_TIME = ProactivePolicy(quiet_start=None, quiet_end=None, max_per_30_days=1000)


class Shop:
    """Customers, identities and notices in one database, at the test clock's time."""

    def __init__(self, database: Database, clock: Any) -> None:
        self.database, self.clock = database, clock
        self._count = 0

    def customer(self, telegram_chat: Optional[str] = None, **other_channels: str) -> int:
        self._count += 1
        with self.database.session(write=True) as session:
            customer = create_customer(session, f"shopper{self._count}@example.com", first_name="Ann")
            if telegram_chat is not None:
                link_identity(session, customer.id, "telegram", telegram_chat)
            for channel, external_id in other_channels.items():
                link_identity(session, customer.id, channel, external_id)
            return customer.id

    def notice(self, customer_id: int, text: str = LAMP, kind: str = "review_approved", key: str = "",
               delay: Optional[timedelta] = None) -> int:
        with self.database.session(write=True) as session:
            notice = queue_notice(session, customer_id, kind, text, key or f"{kind}:{customer_id}:{text}",
                                  self.clock.current)
            if delay is not None:
                notice.send_after = self.clock.current + delay
            notice_id = notice.id
        self.route()
        return notice_id

    def route(self) -> None:
        """What the web app's scheduler does: give the due messages a chat."""
        with self.database.session(write=True) as session:
            route_due(session, ANY_TIME, self.clock.current)

    def notice_row(self, notice_id: int) -> OutboundMessage:
        with self.database.session() as session:
            return session.get(OutboundMessage, notice_id)


@pytest.fixture()
def shop(sqlite_db: Database, clock: Any) -> Shop:
    return Shop(sqlite_db, clock)


def telegram_settings(tmp_path: Path, api: FakeTelegramApi, **env: str) -> Settings:
    values = {"RAPPORT_DATA_DIR": str(tmp_path / "var"), "TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
              "TELEGRAM_API_BASE": api.base_url}
    values.update(env)
    return Settings.from_env(values)


class Server:
    def __init__(self, api: FakeTelegramApi, channel: Any, server: Any, url: str = "") -> None:
        self.api, self.channel, self.server, self.url = api, channel, server, url

    def sent(self) -> List[Any]:
        return [(str(params["chat_id"]), params["text"]) for params in self.api.called("sendMessage")]


async def _start(tmp_path: Path, database: Database, env: Optional[dict] = None, **options: Any) -> Server:
    api = await FakeTelegramApi(TOKEN).start()
    options.setdefault("pacing_interval", 0.0)
    _app, server, _agent, channel, url = await _serve(
        telegram_settings(tmp_path, api, **(env or {})), database=database, **options
    )
    return Server(api, channel, server, url)


async def _shut(running: Server) -> None:
    await _stop(running.server)
    await running.api.stop()


@pytest.fixture()
async def tg(tmp_path: Path, sqlite_db: Database) -> AsyncIterator[Server]:
    """A webhook-mode channel whose own ticks are an hour apart: the tests drive ticks themselves."""
    running = await _start(tmp_path, sqlite_db, notice_interval=3600)
    yield running
    await _shut(running)


async def _eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- delivery through the channel -------------------------------------------------------------------------


async def test_a_linked_customers_notice_is_sent_once(tg: Server, shop: Shop) -> None:
    notice_id = shop.notice(shop.customer(telegram_chat=CHAT))

    assert await tg.channel.notices.run_once() == 1
    assert tg.sent() == [(CHAT, LAMP)]
    row = shop.notice_row(notice_id)
    assert row.status == "delivered" and row.sent_at == row.delivered_at == shop.clock.current
    assert (row.channel, row.recipient, row.attempts) == ("telegram", CHAT, 1)

    assert await tg.channel.notices.run_once() == 0  # a second pass sends nothing
    assert tg.sent() == [(CHAT, LAMP)]
    with shop.database.session(write=True) as session:  # and the chat does not tell it again
        assert claim_chat_notices(session, row.customer_id, shop.clock.current) == []


async def test_a_customer_without_a_telegram_chat_keeps_the_notice_for_the_conversation(tg: Server, shop: Shop) -> None:
    guest_like = shop.notice(shop.customer())
    on_instagram = shop.notice(shop.customer(instagram="ig-555"))

    assert await tg.channel.notices.run_once() == 0
    assert tg.sent() == []
    assert shop.notice_row(guest_like).status == "queued" and shop.notice_row(on_instagram).status == "queued"


async def test_every_kind_that_is_due_is_sent(tg: Server, shop: Shop) -> None:
    customer_id = shop.customer(telegram_chat=CHAT)
    later = shop.notice(customer_id, "Not yet", kind="referral_rewarded", delay=timedelta(minutes=5))
    expiring = shop.notice(customer_id, "Your 300 points expire on 1 July", kind="points_expiry_warning")
    assert "points_expiry_warning" not in CHAT_NOTICE_KINDS  # not told in chat, but pushed like the others

    assert await tg.channel.notices.run_once() == 1
    assert tg.sent() == [(CHAT, "Your 300 points expire on 1 July")]
    assert shop.notice_row(expiring).status == "delivered" and shop.notice_row(later).status == "queued"

    shop.clock.advance(minutes=5)
    shop.route()
    assert await tg.channel.notices.run_once() == 1
    assert tg.sent()[-1] == (CHAT, "Not yet")


async def test_a_429_waits_retry_after_and_then_delivers(tg: Server, shop: Shop) -> None:
    notice_id = shop.notice(shop.customer(telegram_chat=CHAT))
    tg.api.fail_once_with_429("sendMessage", retry_after=1)
    started = asyncio.get_running_loop().time()
    assert await tg.channel.notices.run_once() == 1
    assert asyncio.get_running_loop().time() - started >= 1.0  # Telegram's wait was kept
    assert tg.sent() == [(CHAT, LAMP), (CHAT, LAMP)]  # the refused try, then the one Telegram took
    assert shop.notice_row(notice_id).status == "delivered"


async def test_a_429_longer_than_the_output_waits_queues_the_message_again_after_it(tg: Server, shop: Shop) -> None:
    notice_id = shop.notice(shop.customer(telegram_chat=CHAT))
    tg.api.fail_once_with_429("sendMessage", retry_after=120)
    assert await tg.channel.notices.run_once() == 0
    row = shop.notice_row(notice_id)
    assert (row.status, row.channel, row.reason) == ("queued", "telegram", "Telegram 429: retry after 120 s")
    assert row.send_after == shop.clock.current + timedelta(seconds=120)
    assert await tg.channel.notices.run_once() == 0  # not before the wait
    shop.clock.advance(seconds=120)
    assert await tg.channel.notices.run_once() == 1
    assert shop.notice_row(notice_id).status == "delivered" and shop.notice_row(notice_id).attempts == 2


async def test_a_refused_send_is_marked_failed_and_the_next_notice_still_goes(
    tg: Server, shop: Shop, capsys: pytest.CaptureFixture
) -> None:
    blocked = shop.notice(shop.customer(telegram_chat="2222222"), "Your photo was approved")
    fine = shop.notice(shop.customer(telegram_chat=CHAT))
    tg.api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")

    assert await tg.channel.notices.run_once() == 1
    assert [chat for chat, _ in tg.sent()] == ["2222222", CHAT]  # the refused one was tried first
    failed = shop.notice_row(blocked)
    assert failed.status == "failed"
    assert "blocked by the user" in failed.payload["error"] and len(failed.payload["error"]) <= 200
    assert TOKEN not in failed.payload["error"]
    assert shop.notice_row(fine).status == "delivered"
    assert await tg.channel.notices.run_once() == 0  # a failed notice is not pushed again …
    with shop.database.session(write=True) as session:  # … but told in the conversation, once
        assert claim_chat_notices(session, failed.customer_id, shop.clock.current) == ["Your photo was approved"]
        assert claim_chat_notices(session, failed.customer_id, shop.clock.current) == []
    logs = capsys.readouterr().err  # structlog writes to stderr
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    notices = [(e["event"], e.get("notice_id")) for e in events if e["event"].startswith("telegram.notice.")]
    # logs carry the notice ids …
    assert ("telegram.notice.failed", blocked) in notices and ("telegram.notice.sent", fine) in notices
    assert LAMP not in logs and "Your photo" not in logs and TOKEN not in logs  # … never the texts or the token


def member_change(chat: str, status: str, update_id: int) -> dict:
    """Telegram's my_chat_member update in a private chat: the shopper blocked ("kicked") or unblocked
    ("member") the bot."""
    shopper = {"id": int(chat), "is_bot": False, "first_name": "Ann"}
    bot = {"id": 123456, "is_bot": True, "first_name": "Shop", "username": "shop_bot"}
    old = "member" if status == "kicked" else "kicked"
    return {"update_id": update_id, "my_chat_member": {
        "chat": {"id": int(chat), "type": "private", "first_name": "Ann"}, "from": shopper, "date": 1765100000,
        "old_chat_member": {"user": bot, "status": old, **({"until_date": 0} if old == "kicked" else {})},
        "new_chat_member": {"user": bot, "status": status, **({"until_date": 0} if status == "kicked" else {})}}}


async def post_update(tg: Server, update: dict) -> Tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(tg.url + "/webhooks/telegram/webhook", json=update,
                                headers={SECRET_HEADER: SECRET}) as reply:
            return reply.status, await reply.json()


def unreachable_since(shop: Shop, chat: str) -> Any:
    with shop.database.session() as session:
        return session.execute(select(ChannelIdentity.unreachable_since).where(
            ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == chat)).scalar_one()


async def test_a_chat_that_blocked_the_bot_gets_no_notices_until_it_unblocks(tg: Server, shop: Shop) -> None:
    customer_id = shop.customer(telegram_chat=CHAT)
    status, body = await post_update(tg, member_change(CHAT, "kicked", 70001))
    assert status == 200 and body["processed"] is False
    assert unreachable_since(shop, CHAT) == shop.clock.current
    assert tg.sent() == []  # nothing is said to a chat that blocked the bot

    notice_id = shop.notice(customer_id)
    assert await tg.channel.notices.run_once() == 0
    assert tg.sent() == [] and shop.notice_row(notice_id).status == "queued"  # kept for the conversation

    shop.clock.advance(hours=2)
    status, _ = await post_update(tg, member_change(CHAT, "member", 70002))
    assert status == 200 and unreachable_since(shop, CHAT) is None
    assert shop.notice_row(notice_id).reason == "no reachable chat (blocked the bot)"
    shop.route()  # looked at again an hour after the block was found
    assert await tg.channel.notices.run_once() == 1
    assert tg.sent() == [(CHAT, LAMP)]


async def test_a_guest_chat_blocking_the_bot_is_answered_and_records_nothing(tg: Server, shop: Shop) -> None:
    status, body = await post_update(tg, member_change("5555555", "kicked", 70003))
    assert status == 200 and body == {"ok": True, "processed": False}
    assert tg.sent() == []


async def test_a_notice_refused_as_blocked_marks_the_chat_unreachable(tg: Server, shop: Shop) -> None:
    customer_id = shop.customer(telegram_chat=CHAT)
    shop.notice(customer_id, "Your photo was approved")
    tg.api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    assert await tg.channel.notices.run_once() == 0
    assert unreachable_since(shop, CHAT) == shop.clock.current
    later = shop.notice(customer_id, "Your friend's first order earned you 500 points")
    assert await tg.channel.notices.run_once() == 0
    assert shop.notice_row(later).status == "queued" and len(tg.api.called("sendMessage")) == 1
    assert shop.notice_row(later).channel is None  # not routed to the chat that blocked the bot


async def test_a_block_recorded_while_the_store_is_down_is_retried_by_telegram(
    tmp_path: Path, shop: Shop
) -> None:
    shop.customer(telegram_chat=CHAT)
    down = Database(f"sqlite:///{tmp_path / 'missing-dir-is-a-file'}")
    (tmp_path / "missing-dir-is-a-file").mkdir()  # the store cannot be opened
    running = await _start(tmp_path, down, notice_interval=3600)
    try:
        status, _ = await post_update(running, member_change(CHAT, "kicked", 70004))
        assert status == 503  # Telegram redelivers it
    finally:
        await _shut(running)
        down.dispose()
    working = await _start(tmp_path, shop.database, notice_interval=3600)
    try:  # the redelivery reaches a process whose store answers
        status, _ = await post_update(working, member_change(CHAT, "kicked", 70004))
        assert status == 200 and unreachable_since(shop, CHAT) == shop.clock.current
    finally:
        await _shut(working)


async def test_the_channel_starts_the_delivery_task_and_stops_it_with_the_server(
    tmp_path: Path, sqlite_db: Database, shop: Shop
) -> None:
    running = await _start(tmp_path, sqlite_db, notice_interval=0.05)
    try:
        assert running.channel.notices.running
        notice_id = shop.notice(shop.customer(telegram_chat=CHAT))
        await _eventually(lambda: running.sent() == [(CHAT, LAMP)])
        await _eventually(lambda: shop.notice_row(notice_id).status == "delivered")
        task = running.channel.notices._task
    finally:
        await _shut(running)
    assert not running.channel.notices.running and task.done() and not task.cancelled()


async def test_delivery_runs_in_long_polling_mode_too(tmp_path: Path, sqlite_db: Database, shop: Shop) -> None:
    running = await _start(tmp_path, sqlite_db, env={"TELEGRAM_MODE": "polling"}, notice_interval=0.05)
    try:
        shop.notice(shop.customer(telegram_chat=CHAT))
        await _eventually(lambda: running.sent() == [(CHAT, LAMP)])
    finally:
        await _shut(running)


async def test_zero_seconds_turns_delivery_off(tmp_path: Path, sqlite_db: Database, shop: Shop) -> None:
    running = await _start(tmp_path, sqlite_db, env={"NOTICE_DELIVERY_SECONDS": "0"})
    try:
        assert running.channel.notices.interval == 0 and not running.channel.notices.running
    finally:
        await _shut(running)


async def test_the_interval_comes_from_the_settings(tmp_path: Path, sqlite_db: Database) -> None:
    running = await _start(tmp_path, sqlite_db, env={"NOTICE_DELIVERY_SECONDS": "45"})
    try:
        assert running.channel.notices.interval == 45 and running.channel.notices.running
    finally:
        await _shut(running)


async def test_an_unreachable_store_is_retried_and_the_loop_survives(tmp_path: Path, clock: Any) -> None:
    # A database without its tables fails every claim until the schema appears.
    database = Database(f"sqlite:///{tmp_path / 'later.db'}")
    running = await _start(tmp_path, database, notice_interval=0.02)
    running.channel.notices.max_delay = 0.05
    try:
        await asyncio.sleep(0.15)  # a few failing ticks
        assert running.channel.notices.running and running.sent() == []
        await asyncio.to_thread(database.create_schema)
        shop = Shop(database, clock)
        shop.notice(shop.customer(telegram_chat=CHAT))
        await _eventually(lambda: running.sent() == [(CHAT, LAMP)])
    finally:
        await _shut(running)
        database.dispose()


# -- the claim ------------------------------------------------------------------------------------------


def test_the_most_recent_telegram_identity_gets_the_notice(shop: Shop) -> None:
    customer_id = shop.customer(telegram_chat="3333333")
    shop.clock.advance(days=1)
    with shop.database.session(write=True) as session:
        link_identity(session, customer_id, "telegram", "4444444")
    notice_id = shop.notice(customer_id)
    with shop.database.session(write=True) as session:
        [delivery] = claim_for_channel(session, "telegram", shop.clock.current)
    assert (delivery.notice_id, delivery.customer_id, delivery.external_id, delivery.text) == (
        notice_id, customer_id, "4444444", LAMP
    )


def test_claims_come_oldest_first_within_the_limit(shop: Shop) -> None:
    customer_id = shop.customer(telegram_chat=CHAT)
    ids = [shop.notice(customer_id, f"notice {n}") for n in range(5)]
    with shop.database.session(write=True) as session:
        first = claim_for_channel(session, "telegram", shop.clock.current, limit=3)
    with shop.database.session(write=True) as session:
        rest = claim_for_channel(session, "telegram", shop.clock.current, limit=3)
    assert [d.notice_id for d in first] == ids[:3] and [d.notice_id for d in rest] == ids[3:]


def test_mark_failed_keeps_the_payload_and_cuts_the_reason(shop: Shop) -> None:
    notice_id = shop.notice(shop.customer(telegram_chat=CHAT))
    with shop.database.session(write=True) as session:
        session.get(OutboundMessage, notice_id).payload = {"review_id": 7}
    with shop.database.session(write=True) as session:
        assert mark_failed(session, notice_id, "x" * 500) is True
        assert mark_failed(session, 999_999, "nothing") is False
    row = shop.notice_row(notice_id)
    assert row.status == "failed" and row.payload == {"review_id": 7, "error": "x" * 200}


def test_two_claimers_on_postgresql_never_share_a_notice(postgres_db: Database, clock: Any) -> None:
    shop = Shop(postgres_db, clock)
    customers = [shop.customer(telegram_chat=str(5_000_000 + n)) for n in range(4)]
    ids = {shop.notice(customers[n % 4], f"notice {n}") for n in range(40)}

    # One claimer holds its rows uncommitted: the other skips them rather than waiting or taking them.
    held_claimed, other_done = threading.Event(), threading.Event()
    held: List[int] = []

    def hold() -> None:
        with postgres_db.session(write=True) as session:
            held.extend(d.notice_id for d in claim_for_channel(session, "telegram", clock.current, limit=5))
            held_claimed.set()
            assert other_done.wait(10), "the second claimer blocked on the rows the first one holds"

    holder = threading.Thread(target=hold)
    holder.start()
    assert held_claimed.wait(10)
    with postgres_db.session(write=True) as session:
        other = [d.notice_id for d in claim_for_channel(session, "telegram", clock.current, limit=5)]
    other_done.set()
    holder.join(10)
    assert len(held) == 5 and len(other) == 5 and not set(held) & set(other)

    # Then two claimers race until nothing is left: every notice is claimed exactly once.
    claimed: List[List[int]] = [[], []]
    start = threading.Barrier(2)

    def drain(mine: List[int]) -> None:
        start.wait(10)
        while True:
            with postgres_db.session(write=True) as session:
                batch = claim_for_channel(session, "telegram", clock.current, limit=3)
            if not batch:
                return
            mine.extend(d.notice_id for d in batch)

    threads = [threading.Thread(target=drain, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everything = held + other + claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == len(ids) and set(everything) == ids
    with postgres_db.session() as session:
        statuses: Set[str] = set(session.execute(select(OutboundMessage.status)).scalars())
        assert statuses == {"sent"}
        assert session.execute(select(ChannelIdentity)).scalars().first() is not None


# -- the setting ------------------------------------------------------------------------------------------


def test_notice_delivery_seconds_defaults_to_30_and_0_turns_it_off(tmp_path: Path) -> None:
    assert Settings.from_env({"RAPPORT_DATA_DIR": str(tmp_path)}).notice_delivery_seconds == 30
    assert Settings.from_env({"NOTICE_DELIVERY_SECONDS": "0"}).notice_delivery_seconds == 0
    assert Settings.from_env({"NOTICE_DELIVERY_SECONDS": "3600"}).notice_delivery_seconds == 3600
    assert Settings.from_env({"NOTICE_DELIVERY_SECONDS": " "}).notice_delivery_seconds == 30


@pytest.mark.parametrize("value", ["abc", "-1", "3601", "1.5"])
def test_a_bad_notice_delivery_seconds_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="NOTICE_DELIVERY_SECONDS"):
        Settings.from_env({"NOTICE_DELIVERY_SECONDS": value})
