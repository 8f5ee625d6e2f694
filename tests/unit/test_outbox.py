"""The outbox's decisions (bot/outbox/): one row per occasion, routed to the shopper's best reachable chat with
consent, quiet hours (the shopper's time zone, else the shop's), the cap per 30 days and relevance kept, and the
senders' reports (a closed Instagram window, the shopper writing again). Real database, moved clock."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any, Optional

import pytest

from bot.consent import UNSUBSCRIBED, record_consent
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.models import Customer, OutboundMessage
from bot.outbox.policy import ProactivePolicy
from bot.outbox.service import (
    WINDOW_REASON, claim_routed, enqueue, list_messages, mark_delivered, route_due, window_closed, window_opened,
)

NIGHTS = ProactivePolicy(quiet_start=time(21, 0), quiet_end=time(9, 0), time_zone="Europe/Berlin", max_per_30_days=3)


class Outbox:
    def __init__(self, database: Database, clock: Any) -> None:
        self.database, self.clock, self.count = database, clock, 0

    def customer(self, time_zone: Optional[str] = None, **chats: str) -> int:
        self.count += 1
        with self.database.session(write=True) as session:
            customer = create_customer(session, f"s{self.count}@example.com", first_name="Ann")
            customer.time_zone = time_zone
            for channel, external_id in chats.items():
                link_identity(session, customer.id, channel, external_id)
            return customer.id

    def enqueue(self, customer_id: int, key: str, kind: str = "tier_change", **options: Any) -> int:
        with self.database.session(write=True) as session:
            return enqueue(session, customer_id, kind, f"text of {key}", key, self.clock.current, **options).id

    def route(self, policy: ProactivePolicy = NIGHTS) -> Any:
        with self.database.session(write=True) as session:
            return route_due(session, policy, self.clock.current)

    def row(self, message_id: int) -> OutboundMessage:
        with self.database.session() as session:
            return session.get(OutboundMessage, message_id)


@pytest.fixture()
def outbox(sqlite_db: Database, clock: Any) -> Outbox:
    clock.at(datetime(2026, 6, 15, 12, tzinfo=timezone.utc))  # 14:00 in Berlin
    return Outbox(sqlite_db, clock)


def test_the_same_occasion_is_queued_once(outbox: Outbox) -> None:
    customer = outbox.customer(telegram="100")
    first = outbox.enqueue(customer, "tier-change:7")
    assert outbox.enqueue(customer, "tier-change:7") == first
    with outbox.database.session() as session:
        assert len(list_messages(session)) == 1


def test_the_best_reachable_chat_is_chosen(outbox: Outbox) -> None:
    both = outbox.customer(widget="w-1", instagram="ig-1", telegram="101")
    instagram = outbox.customer(widget="w-2", instagram="ig-2")
    widget = outbox.customer(widget="w-3")
    ids = [outbox.enqueue(customer, f"k{customer}") for customer in (both, instagram, widget)]
    assert outbox.route().routed == 3
    assert [(outbox.row(i).channel, outbox.row(i).recipient) for i in ids] == [
        ("telegram", "101"), ("instagram", "ig-2"), ("widget", "w-3")]


def test_quiet_hours_follow_the_shoppers_time_zone_else_the_shops(outbox: Outbox) -> None:
    outbox.clock.at(datetime(2026, 6, 15, 20, 30, tzinfo=timezone.utc))  # 22:30 in Berlin, 13:30 in Los Angeles
    in_berlin = outbox.enqueue(outbox.customer(telegram="102"), "a")
    in_la = outbox.enqueue(outbox.customer("America/Los_Angeles", telegram="103"), "b")
    report = outbox.route()
    assert (report.routed, report.postponed) == (1, 1)
    held = outbox.row(in_berlin)
    assert held.status == "queued" and held.channel is None
    assert held.send_after == datetime(2026, 6, 16, 7, tzinfo=timezone.utc)  # 09:00 in Berlin
    assert held.reason == "quiet hours until 2026-06-16 07:00 UTC"
    assert outbox.row(in_la).channel == "telegram"

    outbox.clock.at(datetime(2026, 6, 16, 7, tzinfo=timezone.utc))
    assert outbox.route().routed == 1 and outbox.row(in_berlin).channel == "telegram"


def test_at_most_n_per_shopper_in_30_days_across_kinds(outbox: Outbox) -> None:
    customer = outbox.customer(telegram="104")
    kinds = ["review_request", "tier_change", "referral_rewarded", "points_expiry_warning"]
    ids = [outbox.enqueue(customer, f"c{n}", kind=kind) for n, kind in enumerate(kinds)]
    assert outbox.route().routed == 3
    capped = outbox.row(ids[3])
    assert (capped.status, capped.reason) == ("skipped", "frequency cap: 3 messages in 30 days")

    outbox.clock.advance(days=31)  # the window moves on
    later = outbox.enqueue(customer, "c-later")
    assert outbox.route().routed == 1 and outbox.row(later).channel == "telegram"


def test_an_unsubscribed_chat_gets_nothing_and_another_chat_still_may(outbox: Outbox) -> None:
    only_telegram = outbox.customer(telegram="105")
    two_chats = outbox.customer(telegram="106", widget="w-6")
    with outbox.database.session(write=True) as session:
        for chat in ("105", "106"):
            record_consent(session, "telegram", chat, UNSUBSCRIBED, now=outbox.clock.current, words="unsubscribe")
    gone, other = outbox.enqueue(only_telegram, "u1"), outbox.enqueue(two_chats, "u2")
    outbox.route()
    assert (outbox.row(gone).status, outbox.row(gone).reason) == ("skipped", "unsubscribed")
    assert (outbox.row(other).status, outbox.row(other).channel) == ("queued", "widget")


def test_unsubscribing_after_routing_is_honoured_by_the_sender(outbox: Outbox) -> None:
    message = outbox.enqueue(outbox.customer(telegram="107"), "u3")
    outbox.route()
    with outbox.database.session(write=True) as session:
        record_consent(session, "telegram", "107", UNSUBSCRIBED, now=outbox.clock.current)
    with outbox.database.session(write=True) as session:
        assert claim_routed(session, "telegram", outbox.clock.current) == []
    assert (outbox.row(message).status, outbox.row(message).reason) == ("skipped", "unsubscribed")


def test_a_stale_message_is_skipped_not_sent(outbox: Outbox) -> None:
    customer = outbox.customer(telegram="108")
    message = outbox.enqueue(customer, "stale", expires_at=outbox.clock.current + timedelta(hours=1))
    outbox.clock.advance(hours=2)
    outbox.route()
    assert (outbox.row(message).status, outbox.row(message).reason) == ("skipped", "no longer relevant")


def test_a_shopper_with_no_chat_is_looked_at_again_later(outbox: Outbox) -> None:
    customer = outbox.customer()
    message = outbox.enqueue(customer, "nochat")
    assert outbox.route().postponed == 1
    row = outbox.row(message)
    assert (row.status, row.reason) == ("queued", "no linked chat yet")
    assert row.send_after == outbox.clock.current + timedelta(hours=1)


def test_a_closed_instagram_window_waits_for_the_shopper_then_sends(outbox: Outbox) -> None:
    customer = outbox.customer(instagram="ig-9")
    message = outbox.enqueue(customer, "window")
    outbox.route()
    with outbox.database.session(write=True) as session:
        [claimed] = claim_routed(session, "instagram", outbox.clock.current)
        assert window_closed(session, claimed.message_id, outbox.clock.current) == "waiting_for_window"
    assert (outbox.row(message).status, outbox.row(message).reason) == ("waiting_for_window", WINDOW_REASON)

    outbox.clock.advance(days=2)  # the shopper writes again
    with outbox.database.session(write=True) as session:
        assert window_opened(session, "instagram", "ig-9", outbox.clock.current) == 1
        [again] = claim_routed(session, "instagram", outbox.clock.current)
        mark_delivered(session, again.message_id, outbox.clock.current)
    row = outbox.row(message)
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 2, outbox.clock.current)


def test_a_closed_window_goes_to_another_chat_when_there_is_one(outbox: Outbox) -> None:
    customer = outbox.customer(instagram="ig-10", widget="w-10")
    message = outbox.enqueue(customer, "elsewhere")
    outbox.route()
    assert outbox.row(message).channel == "instagram"
    with outbox.database.session(write=True) as session:
        [claimed] = claim_routed(session, "instagram", outbox.clock.current)
        assert window_closed(session, claimed.message_id, outbox.clock.current) == "queued"
    assert outbox.route().routed == 1
    row = outbox.row(message)
    assert (row.channel, row.recipient, row.payload["tried_channels"]) == ("widget", "w-10", ["instagram"])


def test_a_waiting_message_that_went_stale_is_skipped_when_the_shopper_returns(outbox: Outbox) -> None:
    customer = outbox.customer(instagram="ig-11")
    message = outbox.enqueue(customer, "old", expires_at=outbox.clock.current + timedelta(days=1))
    outbox.route()
    with outbox.database.session(write=True) as session:
        [claimed] = claim_routed(session, "instagram", outbox.clock.current)
        window_closed(session, claimed.message_id, outbox.clock.current)
    outbox.clock.advance(days=3)
    with outbox.database.session(write=True) as session:
        assert window_opened(session, "instagram", "ig-11", outbox.clock.current) == 0
    assert (outbox.row(message).status, outbox.row(message).reason) == ("skipped", "no longer relevant")


def test_an_unknown_time_zone_falls_back_to_the_shops() -> None:
    night_in_berlin = datetime(2026, 1, 10, 22, tzinfo=timezone.utc)  # 23:00 in Berlin
    for nonsense in ("Not/AZone", "../../etc/localtime", "/etc/localtime", "", "x" * 300):
        assert NIGHTS.quiet_until(night_in_berlin, nonsense) == datetime(2026, 1, 11, 8, tzinfo=timezone.utc), nonsense
    assert ProactivePolicy(quiet_start=None, quiet_end=None).quiet_until(night_in_berlin, None) is None
    daytime = ProactivePolicy(quiet_start=time(12, 0), quiet_end=time(14, 0))
    assert daytime.quiet_until(datetime(2026, 1, 10, 13, tzinfo=timezone.utc), None) == datetime(
        2026, 1, 10, 14, tzinfo=timezone.utc)


def test_a_routed_message_that_waited_too_long_for_its_channel_is_skipped(outbox: Outbox) -> None:
    customer = outbox.customer(telegram="120")
    message = outbox.enqueue(customer, "late", expires_at=outbox.clock.current + timedelta(hours=1))
    outbox.route()
    outbox.clock.advance(hours=2)  # the Telegram channel was down meanwhile
    with outbox.database.session(write=True) as session:
        assert claim_routed(session, "telegram", outbox.clock.current) == []
    assert (outbox.row(message).status, outbox.row(message).reason) == ("skipped", "no longer relevant")


def test_only_channels_the_shop_runs_are_chosen(outbox: Outbox) -> None:
    message = outbox.enqueue(outbox.customer(telegram="121", widget="w-121"), "running")
    with outbox.database.session(write=True) as session:
        assert route_due(session, NIGHTS, outbox.clock.current, channels=("instagram", "widget")).routed == 1
    assert outbox.row(message).channel == "widget"


def test_the_same_occasion_queued_concurrently_is_one_row(postgres_db: Database, clock: Any) -> None:
    import threading

    with postgres_db.session(write=True) as session:
        customer_id = create_customer(session, "race@example.com").id
    start, ids, errors = threading.Barrier(8), [], []

    def queue() -> None:
        try:
            start.wait(10)
            with postgres_db.session(write=True) as session:
                ids.append(enqueue(session, customer_id, "referral_rewarded", "500 points", "referral:9", clock.current).id)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=queue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(ids) == 8 and len(set(ids)) == 1
    with postgres_db.session() as session:
        assert len(list_messages(session)) == 1
