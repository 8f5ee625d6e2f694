"""Campaigns (bot/campaigns/) on a real database: personal fields from the loyalty code, a dry run that asks the
outbox's own rules (consent, quiet hours, the cap, reachability) and writes nothing, a send through the outbox
and the fake Telegram Bot API with the holdout left out, the holdout split stable and random-looking, the bonus
credited once however often it is claimed, poll answers (tapped or typed) recorded, results with the lift
on a small known history, and a poll's answers per saved segment."""
from __future__ import annotations

import json
import threading
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, List, Optional, Tuple

import pytest
from sqlalchemy import func, select

from bot.campaigns.holdout import in_holdout
from bot.campaigns.results import campaign_results
from bot.campaigns.service import (
    CampaignError, create_campaign, dry_run, match_option, open_poll_answer, record_response, send_campaign,
)
from bot.consent import UNSUBSCRIBED, record_consent
from bot.db import Database
from bot.identity import create_customer, link_identity
from bot.loyalty.earning import Credit, award
from bot.loyalty.program import Program, get_program
from bot.models import CampaignRecipient, ChannelIdentity, Customer, LedgerEntry, Order, OutboundMessage
from bot.outbox.policy import ProactivePolicy
from bot.outbox.service import WINDOW_REASON, enqueue, route_due
from channels.instagram.inbound import InstagramInput
from tests.fakes.graph_api import FakeGraphApi
from tests.unit.test_instagram_channel import ACCESS_TOKEN as IG_ACCESS_TOKEN
from tests.unit.test_instagram_channel import Clock as IgClock
from tests.unit.test_instagram_channel import (
    FlakyState, Harness, Recorder, Sleeps, _serve, _stop, instagram_env, text_event,
)
from tests.unit.test_telegram_notices import Server, _shut, _start

__all__ = ["instagram_env"]  # the fixture, shared with the Instagram channel's tests

NOON = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def program_with(policy: ProactivePolicy, holdout: int = 10) -> Program:
    from dataclasses import replace

    base = get_program()
    return replace(base, proactive=policy, campaigns=replace(base.campaigns, holdout_percent=holdout))


DAYTIME = ProactivePolicy(quiet_start=time(21, 0), quiet_end=time(9, 0), time_zone="UTC", max_per_30_days=2)


class Shop:
    def __init__(self, database: Database, clock: Any, program: Program) -> None:
        self.database, self.clock, self.program, self.count = database, clock, program, 0

    def customer(self, first_name: str = "Ann", points: int = 0, time_zone: Optional[str] = None, **chats: str) -> int:
        self.count += 1
        with self.database.session(write=True) as session:
            customer = create_customer(session, f"c{self.count}@example.com", first_name=first_name)
            customer.time_zone = time_zone
            for channel, external_id in chats.items():
                link_identity(session, customer.id, channel, external_id)
            if points:
                award(session, self.program, customer.id, Credit("custom", points, "Start", f"start:{customer.id}"),
                      self.clock.current)
            return customer.id

    def campaign(self, audience: List[int], **options: Any) -> int:
        options.setdefault("name", "Spring")
        options.setdefault("text", "Hi {first_name}, you have {balance} points.")
        with self.database.session(write=True) as session:
            return create_campaign(session, self.program, audience={"customer_ids": audience},
                                   now=self.clock.current, **options).id

    def dry_run(self, campaign_id: int) -> Any:
        with self.database.session() as session:
            return dry_run(session, self.program, campaign_id, self.clock.current)

    def send(self, campaign_id: int) -> Any:
        with self.database.session(write=True) as session:
            return send_campaign(session, self.program, campaign_id, self.clock.current)

    def route(self) -> None:
        with self.database.session(write=True) as session:
            route_due(session, self.program.proactive, self.clock.current)

    def respond(self, campaign_id: int, customer_id: int, **options: Any) -> Any:
        with self.database.session(write=True) as session:
            return record_response(session, self.program, campaign_id, customer_id, self.clock.current, **options)

    def outbox_rows(self) -> int:
        with self.database.session() as session:
            return session.execute(select(func.count()).select_from(OutboundMessage)).scalar_one()


@pytest.fixture()
def shop(sqlite_db: Database, clock: Any, environment: Any) -> Shop:
    clock.at(NOON)
    return Shop(sqlite_db, clock, program_with(DAYTIME, holdout=0))


# -- holdout ----------------------------------------------------------------------------------------------------


def test_the_holdout_is_stable_and_random_looking() -> None:
    ids = range(1, 20_001)
    held = [customer for customer in ids if in_holdout(7, customer, 10)]
    assert held == [customer for customer in ids if in_holdout(7, customer, 10)]  # the same split every time
    assert 0.09 < len(held) / len(ids) < 0.11  # the share asked for
    # Not a pattern of the ids: about as many even as odd, spread evenly over low and high ids.
    assert abs(sum(1 for c in held if c % 2 == 0) / len(held) - 0.5) < 0.04
    assert abs(sum(1 for c in held if c <= 10_000) / len(held) - 0.5) < 0.04
    runs = sum(1 for a, b in zip(held, held[1:]) if b == a + 1)
    assert runs < 0.2 * len(held)  # consecutive ids are not held out together
    # Another campaign holds out another tenth: overlap as for independent draws (≈ 1 %), not the same people.
    other = {customer for customer in ids if in_holdout(8, customer, 10)}
    assert 0.005 < len(other & set(held)) / len(ids) < 0.015
    assert not any(in_holdout(7, customer, 0) for customer in ids)


def test_a_dry_run_gives_the_same_split_each_time_and_the_send_keeps_it(sqlite_db: Database, clock: Any,
                                                                          environment: Any) -> None:
    clock.at(NOON)
    shop = Shop(sqlite_db, clock, program_with(ProactivePolicy(quiet_start=None, quiet_end=None,
                                                               max_per_30_days=100), holdout=30))
    audience = [shop.customer(telegram=str(1000 + n)) for n in range(40)]
    campaign = shop.campaign(audience)
    first, again = shop.dry_run(campaign), shop.dry_run(campaign)
    held = [row.customer_id for row in first.recipients if row.outcome == "holdout"]
    assert held == [row.customer_id for row in again.recipients if row.outcome == "holdout"]
    assert 0 < len(held) < 40
    assert shop.outbox_rows() == 0  # a dry run writes nothing

    report = shop.send(campaign)
    assert (report.queued, report.holdout) == (40 - len(held), len(held))
    with sqlite_db.session() as session:
        stored = sorted(session.execute(select(CampaignRecipient.customer_id).where(
            CampaignRecipient.group == "holdout")).scalars())
        messaged_ids = set(session.execute(select(OutboundMessage.customer_id)).scalars())
    assert stored == sorted(held) and not messaged_ids & set(held)


# -- dry run: the outbox's rules -----------------------------------------------------------------------------------


def test_the_dry_run_shows_each_members_chat_or_why_not(shop: Shop) -> None:
    telegram = shop.customer("Tom", points=120, telegram="201", widget="w-201")
    instagram = shop.customer("Ina", instagram="ig-202")
    widget = shop.customer("Wes", widget="w-203")
    unsubscribed = shop.customer("Una", telegram="204")
    capped = shop.customer("Cap", telegram="205")
    blocked = shop.customer("Bob", telegram="206")
    no_chat = shop.customer("Nel")
    night_in_tokyo = shop.customer("Kei", time_zone="Asia/Tokyo", telegram="208")  # 21:00 there
    with shop.database.session(write=True) as session:
        record_consent(session, "telegram", "204", UNSUBSCRIBED, now=shop.clock.current, words="stop")
        for n in range(2):
            enqueue(session, capped, "tier_change", "earlier", f"earlier:{n}", shop.clock.current)
        session.execute(ChannelIdentity.__table__.update().where(ChannelIdentity.external_id == "206")
                        .values(unreachable_since=shop.clock.current))
    shop.route()  # the capped customer's two earlier messages count
    before = shop.outbox_rows()
    campaign = shop.campaign([telegram, instagram, widget, unsubscribed, capped, blocked, no_chat, night_in_tokyo],
                             text="Hi {first_name}: {balance} points, {tier} tier.")
    plan = {row.customer_id: row for row in shop.dry_run(campaign).recipients}
    assert shop.outbox_rows() == before  # nothing queued

    assert (plan[telegram].outcome, plan[telegram].channel) == ("send", "telegram")
    assert plan[telegram].text == "Hi Tom: 120 points, Bronze tier."
    assert (plan[instagram].outcome, plan[instagram].channel) == ("send", "instagram")
    assert (plan[widget].outcome, plan[widget].channel) == ("send", "widget")
    assert (plan[unsubscribed].outcome, plan[unsubscribed].reason) == ("skip", "unsubscribed")
    assert (plan[capped].outcome, plan[capped].reason) == ("skip", "frequency cap: 2 messages in 30 days")
    assert (plan[blocked].outcome, plan[blocked].reason) == ("wait", "no reachable chat (blocked the bot)")
    assert (plan[no_chat].outcome, plan[no_chat].reason) == ("wait", "no linked chat yet")
    assert plan[night_in_tokyo].outcome == "wait" and plan[night_in_tokyo].channel == "telegram"
    assert plan[night_in_tokyo].reason == "quiet hours until 2026-06-16 00:00 UTC"  # 09:00 in Tokyo


def test_a_campaign_is_checked_when_made(shop: Shop) -> None:
    member = shop.customer(telegram="210")
    with pytest.raises(CampaignError, match=r"unknown personal field \{frist_name\}"):
        shop.campaign([member], text="Hi {frist_name}")
    with pytest.raises(CampaignError, match="unknown button 'dance'"):
        shop.campaign([member], buttons=["dance"])
    with pytest.raises(CampaignError, match="2-10 options"):
        shop.campaign([member], kind="poll", options=["Only one"])
    with pytest.raises(CampaignError, match="longer than 20 characters"):
        shop.campaign([member], kind="poll", options=["Free shipping", "A much longer answer than fits"])


# -- send: through the outbox and the fake Telegram Bot API ---------------------------------------------------------


async def test_a_campaign_goes_out_through_the_outbox_to_the_fake_telegram(tmp_path: Any, sqlite_db: Database,
                                                                             clock: Any, environment: Any) -> None:
    clock.at(NOON)
    shop = Shop(sqlite_db, clock, program_with(DAYTIME, holdout=0))
    tg: Server = await _start(tmp_path, sqlite_db, notice_interval=3600)
    try:
        ann = shop.customer("Ann", points=300, telegram="301")
        una = shop.customer("Una", telegram="302")
        with sqlite_db.session(write=True) as session:
            record_consent(session, "telegram", "302", UNSUBSCRIBED, now=clock.current, words="unsubscribe")
        campaign = shop.campaign([ann, una], text="{first_name}, your {balance} points are waiting.",
                                 buttons=["redeem", "quiz"], bonus_points=50)
        assert shop.send(campaign).queued == 2
        assert shop.send(campaign).already_sent  # a second send queues nothing
        shop.route()
        assert await tg.channel.notices.run_once() == 1
        [sent] = tg.api.called("sendMessage")
        assert (str(sent["chat_id"]), sent["text"]) == ("301", "Ann, your 300 points are waiting.")
        keyboard = json.loads(sent["reply_markup"]) if isinstance(sent["reply_markup"], str) else sent["reply_markup"]
        taps = [button["callback_data"] for row in keyboard["inline_keyboard"] for button in row]
        assert taps == [f'/redeem_reward{{"campaign":{campaign}}}', f'/start_quiz{{"campaign":{campaign}}}']
        results = _results(shop, campaign)
        assert (results.sent, results.delivered, results.skipped_reasons) == (1, 1, {"unsubscribed": 1})
    finally:
        await _shut(tg)


IG_DAY = 24 * 60 * 60


async def test_a_segment_campaign_over_the_fake_graph_api_keeps_every_rule(
        instagram_env: Any, sqlite_db: Database, clock: Any, environment: Any) -> None:
    """A poll to a saved segment of Instagram shoppers, through the outbox and the Instagram sender against the
    fake Graph API: inside the 24-hour window it goes out untagged; outside it, it waits for the shopper's next
    message (or moves to their other chat); an unsubscribed chat is skipped, quiet hours defer it, the cap
    skips it, each with its reason; the holdout gets nothing."""
    from bot.segments.filters import SegmentFilter
    from bot.segments.service import save_segment

    clock.at(NOON)
    shop = Shop(sqlite_db, clock, program_with(DAYTIME, holdout=30))
    graph = await FakeGraphApi(access_token=IG_ACCESS_TOKEN).start()
    instagram_env(graph.base_url)
    channel_clock = IgClock()
    channel_clock.now = NOON.timestamp()  # the channel's window clock, kept with the outbox's
    recorder, store, sleeps = Recorder(), FlakyState(), Sleeps()
    channel = InstagramInput(clock=channel_clock, state=store, sleep=sleeps, database=sqlite_db)
    _app, server, base = await _serve(channel, recorder)
    harness = Harness(graph, channel, recorder, base, channel_clock, sleeps, store)

    async def writes(ig: str, text: str = "hello", hours_ago: float = 0) -> None:
        channel_clock.now = clock.current.timestamp() - hours_ago * 3600
        assert (await harness.post(text_event(text, sender=ig))).status == 200
        channel_clock.now = clock.current.timestamp()

    def later(**delta: float) -> None:
        clock.advance(**delta)
        channel_clock.now = clock.current.timestamp()

    def rows() -> dict:
        with sqlite_db.session() as session:
            return {row.customer_id: (row.status, row.channel, row.reason)
                    for row in session.execute(select(OutboundMessage).where(OutboundMessage.kind == "campaign"))
                    .scalars()}

    def sent_to(since: int = 0) -> List[str]:
        return [body["recipient"]["id"] for body in graph.delivered[since:]]

    try:
        with sqlite_db.session(write=True) as session:
            save_segment(session, "Instagram shoppers", SegmentFilter.from_json(
                [{"kind": "channel", "channels": ["instagram"]}]), by="test", now=NOON, program=shop.program)
            campaign = create_campaign(session, shop.program, name="What next", kind="poll",
                                       text="{first_name}, what should we do more of?",
                                       options=["Free shipping", "New colours"],
                                       audience={"segment": "Instagram shoppers"}, now=NOON).id
        # The members, one per rule; whoever the campaign's holdout takes (its own stable draw) is held out.
        roles = ["inside", "outside", "outside_with_widget", "unsubscribed", "quiet", "capped"]
        who: dict = {}
        held: List[Tuple[int, str]] = []
        for n in range(1, 60):
            if not roles and len(held) >= 2:
                break
            ig = f"178400000{n:04d}"
            with sqlite_db.session(write=True) as session:
                customer = create_customer(session, f"ig{n}@example.com", first_name=f"Ig{n}")
                link_identity(session, customer.id, "instagram", ig)
                if in_holdout(campaign, customer.id, 30):
                    held.append((customer.id, ig))
                    continue
                role = roles.pop(0) if roles else "inside"
                who.setdefault(role, []).append((customer.id, ig))
                if role == "outside_with_widget":
                    link_identity(session, customer.id, "widget", f"w-{n}")
                elif role == "unsubscribed":
                    record_consent(session, "instagram", ig, UNSUBSCRIBED, now=NOON, words="stop")
                elif role == "quiet":
                    customer.time_zone = "Asia/Tokyo"  # 21:00 there: quiet until 09:00 (00:00 UTC)
        assert not roles and len(held) >= 2
        [(outside, outside_ig)] = who["outside"]
        [(moved, _)] = who["outside_with_widget"]
        [(unsubscribed, _)] = who["unsubscribed"]
        [(quiet, quiet_ig)] = who["quiet"]
        [(capped, capped_ig)] = who["capped"]
        inside = who["inside"]

        for role in ("outside", "outside_with_widget"):
            await writes(who[role][0][1], hours_ago=25)  # the window closed an hour ago
        for _, ig in inside + held + [(quiet, quiet_ig), (capped, capped_ig)]:
            await writes(ig)
        with sqlite_db.session(write=True) as session:  # the capped shopper already had two messages this month
            for n in range(2):
                enqueue(session, capped, "tier_change", f"Earlier news {n}", f"earlier:{n}", clock.current)
        shop.route()
        assert await channel.outbox.run_once() == 2 and sent_to() == [capped_ig, capped_ig]
        before = len(graph.delivered)

        plan = {row.customer_id: row for row in shop.dry_run(campaign).recipients}
        assert {row.outcome for c, row in plan.items() if c in dict(held)} == {"holdout"}
        assert all((plan[c].outcome, plan[c].channel) == ("send", "instagram") for c, _ in inside)
        # The dry run asks the router, which cannot see Instagram's window (the channel's state): "send".
        assert (plan[outside].outcome, plan[outside].channel) == ("send", "instagram")
        assert (plan[unsubscribed].outcome, plan[unsubscribed].reason) == ("skip", "unsubscribed")
        assert (plan[quiet].outcome, plan[quiet].channel) == ("wait", "instagram")
        assert plan[quiet].reason == "quiet hours until 2026-06-16 00:00 UTC"
        assert (plan[capped].outcome, plan[capped].reason) == ("skip", "frequency cap: 2 messages in 30 days")
        assert rows() == {}  # the dry run queued nothing

        report = shop.send(campaign)
        assert (report.queued, report.holdout) == (len(plan) - len(held), len(held))
        shop.route()
        assert await channel.outbox.run_once() == len(inside)
        bodies = graph.delivered[before:]
        assert sorted(sent_to(before)) == sorted(ig for _, ig in inside)
        for body in bodies:
            assert "tag" not in body and "messaging_type" not in body  # never HUMAN_AGENT: the bot is no person
            assert body["message"]["text"].endswith(", what should we do more of?")
            assert [reply["payload"] for reply in body["message"]["quick_replies"]] == [
                f'/answer_poll{{"campaign":{campaign},"poll_option":{n}}}' for n in (1, 2)]
        state = rows()
        assert all(state[c][0] == "delivered" for c, _ in inside)
        assert state[outside] == ("waiting_for_window", "instagram", WINDOW_REASON)
        assert state[unsubscribed] == ("skipped", None, "unsubscribed")
        assert state[quiet] == ("queued", None, "quiet hours until 2026-06-16 00:00 UTC")
        assert state[capped] == ("skipped", None, "frequency cap: 2 messages in 30 days")
        assert not set(state) & {c for c, _ in held}  # the holdout is not even queued

        shop.route()  # the shopper with another chat: Instagram's window closed, so their widget takes it
        assert rows()[moved][:2] == ("queued", "widget")

        later(minutes=30)
        await writes(outside_ig, "any news?")  # the window opens again: the waiting poll goes out first
        assert sent_to(before)[len(inside):] == [outside_ig] and rows()[outside][0] == "delivered"

        later(hours=12)  # 00:30 UTC, 09:30 in Tokyo: quiet hours are over (and the window still open)
        shop.route()
        assert await channel.outbox.run_once() == 1 and sent_to(before)[-1] == quiet_ig
        assert rows()[quiet][0] == "delivered"
        assert not set(sent_to()) & {ig for _, ig in held}
        assert [body["recipient"]["id"] for body in graph.delivered].count(capped_ig) == 2  # nothing more

        results = _results(shop, campaign)
        assert results.holdout.members == len(held) and results.delivered == len(inside) + 2
        assert results.skipped_reasons == {"unsubscribed": 1, "frequency cap: 2 messages in 30 days": 1}
    finally:
        await harness.http.close()
        await _stop(server)
        await graph.stop()


def _results(shop: Shop, campaign_id: int) -> Any:
    with shop.database.session() as session:
        return campaign_results(session, shop.program, campaign_id, shop.clock.current)


# -- responses and the bonus ------------------------------------------------------------------------------------------


def _sent_poll(shop: Shop, *members: int, bonus: int = 0) -> int:
    campaign = shop.campaign(list(members), kind="poll", text="What should we do more of?",
                             options=["Free shipping", "New colours", "Faster delivery"], bonus_points=bonus)
    shop.send(campaign)
    shop.route()
    return campaign


def test_the_bonus_is_credited_once_however_often_it_is_claimed(shop: Shop) -> None:
    member = shop.customer(telegram="401")
    campaign = _sent_poll(shop, member, bonus=25)
    first = shop.respond(campaign, member, option=1)
    again = shop.respond(campaign, member, option=2)  # the same shopper taps another option
    assert (first.bonus_credited, first.first, again.bonus_credited, again.first) == (25, True, 0, False)
    with shop.database.session() as session:
        entries = session.execute(select(LedgerEntry.points).where(LedgerEntry.source == "campaign")).scalars().all()
    assert entries == [25]
    assert _results(shop, campaign).options == [("Free shipping", 0), ("New colours", 1), ("Faster delivery", 0)]


def test_concurrent_claims_credit_the_bonus_once_on_postgresql(postgres_db: Database, clock: Any,
                                                               environment: Any) -> None:
    clock.at(NOON)
    shop = Shop(postgres_db, clock, program_with(DAYTIME, holdout=0))
    member = shop.customer(telegram="402")
    campaign = _sent_poll(shop, member, bonus=40)
    barrier, results, errors = threading.Barrier(4), [], []

    def claim() -> None:
        barrier.wait()
        try:
            results.append(shop.respond(campaign, member, option=3))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(result.bonus_credited for result in results) == [0, 0, 0, 40]
    with postgres_db.session() as session:
        assert session.execute(select(LedgerEntry.points).where(LedgerEntry.source == "campaign")).scalars().all() == [40]


def test_only_a_messaged_customer_can_answer(shop: Shop) -> None:
    member, stranger = shop.customer(telegram="403"), shop.customer(telegram="404")
    campaign = _sent_poll(shop, member, bonus=10)
    with pytest.raises(CampaignError, match="was not sent to customer"):
        shop.respond(campaign, stranger, option=1)
    with pytest.raises(CampaignError, match="has no option 4"):
        shop.respond(campaign, member, option=4)


def test_typed_answers_map_to_options() -> None:
    options = ["Free shipping", "New colours", "Faster delivery"]
    assert match_option(options, "2") == 2 and match_option(options, "#3") == 3 and match_option(options, "option 1") == 1
    assert match_option(options, "free shipping!") == 1 and match_option(options, "NEW COLOURS") == 2
    assert match_option(options, "definitely the faster delivery please") == 3
    assert match_option(options, "shipping") == 1
    assert match_option(options, "7") is None and match_option(options, "what are my points?") is None


def test_a_typed_answer_counts_for_the_poll_the_chat_was_sent(shop: Shop) -> None:
    member = shop.customer(telegram="405")
    campaign = _sent_poll(shop, member)
    with shop.database.session(write=True) as session:  # not yet sent by the channel: nothing to answer
        assert open_poll_answer(session, "telegram", "405", "free shipping", shop.clock.current) is None
        session.execute(OutboundMessage.__table__.update().values(status="delivered", sent_at=shop.clock.current))
    with shop.database.session() as session:
        assert open_poll_answer(session, "telegram", "405", "free shipping", shop.clock.current) == (campaign, 1)
        assert open_poll_answer(session, "telegram", "405", "where is my order", shop.clock.current) is None
        assert open_poll_answer(session, "telegram", "999", "free shipping", shop.clock.current) is None
    shop.respond(campaign, member, option=1, typed="free shipping")
    with shop.database.session() as session:  # answered: later messages are not taken as answers
        assert open_poll_answer(session, "telegram", "405", "new colours", shop.clock.current) is None


# -- results ---------------------------------------------------------------------------------------------------------


def test_results_compare_the_messaged_with_the_holdout(sqlite_db: Database, clock: Any, environment: Any) -> None:
    clock.at(NOON)
    shop = Shop(sqlite_db, clock, program_with(ProactivePolicy(quiet_start=None, quiet_end=None,
                                                               max_per_30_days=100), holdout=50))
    audience = [shop.customer(telegram=str(500 + n)) for n in range(20)]
    campaign = shop.campaign(audience, kind="poll", text="Which?", options=["A", "B"])
    report = shop.send(campaign)
    with sqlite_db.session() as session:
        groups = dict(session.execute(select(CampaignRecipient.customer_id, CampaignRecipient.group)).all())
    messaged = [c for c in audience if groups[c] == "messaged"]
    held = [c for c in audience if groups[c] == "holdout"]
    assert len(messaged) == report.queued and len(held) == report.holdout and messaged and held
    shop.route()

    def order(customer_id: int, days: float, total: str, number: str, status: str = "paid") -> None:
        with sqlite_db.session(write=True) as session:
            session.add(Order(external_id=number, customer_id=customer_id, total=Decimal(total), refunded_total=0,
                              currency="USD", status=status, points_earned=0,
                              placed_at=NOON + timedelta(days=days)))

    order(messaged[0], -2, "99.00", "before")  # before the send: not attributed
    order(messaged[0], 3, "40.00", "m0-first")  # the next order after the send counts …
    order(messaged[0], 5, "500.00", "m0-second")  # … once
    order(messaged[1], 10, "60.00", "m1")
    order(messaged[-1], 40, "70.00", "late")  # past the 30 days
    order(held[0], 12, "30.00", "h0")
    order(held[-1], 4, "25.00", "h-cancelled", status="cancelled")
    shop.respond(campaign, messaged[0], option=2)
    clock.advance(days=45)
    results = _results(shop, campaign)
    assert (results.messaged.members, results.holdout.members) == (len(messaged), len(held))
    assert (results.messaged.ordered, results.messaged.revenue) == (2, Decimal("100.00"))
    assert (results.holdout.ordered, results.holdout.revenue) == (1, Decimal("30.00"))
    assert results.replied == 1 and results.options == [("A", 0), ("B", 1)]
    assert results.options_by_tier == {"Bronze": [0, 1]}
    expected = 100 * (2 / len(messaged) - 1 / len(held))
    assert results.lift == pytest.approx(expected)


def test_poll_answers_per_segment_count_each_segments_members(any_db: Database, clock: Any,
                                                              environment: Any) -> None:
    from bot.segments.filters import SegmentFilter
    from bot.segments.service import save_segment

    clock.at(NOON)
    shop = Shop(any_db, clock, program_with(DAYTIME, holdout=0))

    def gold(customer_id: int) -> int:
        with any_db.session(write=True) as session:
            session.execute(Customer.__table__.update().where(Customer.id == customer_id).values(tier_name="Gold"))
        return customer_id

    g1, g2, g3 = (gold(shop.customer(telegram=str(700 + n))) for n in range(3))
    p1, p2 = shop.customer(points=600, telegram="710"), shop.customer(points=600, telegram="711")
    both = gold(shop.customer(points=800, telegram="720"))  # in both segments
    neither = shop.customer(telegram="730")
    gold(shop.customer(telegram="740"))  # a Gold member outside the poll's audience: counted, not messaged
    with any_db.session(write=True) as session:
        save_segment(session, "Gold members", SegmentFilter.from_json([{"kind": "tier", "tiers": ["Gold"]}]),
                     by="test", now=NOON, program=shop.program)
        holders = save_segment(session, "Point holders", SegmentFilter.from_json(
            [{"kind": "points_balance", "min": 500}]), by="test", now=NOON, program=shop.program).ref
    poll = _sent_poll(shop, g1, g2, g3, p1, p2, both, neither)
    for customer_id, option in ((g1, 1), (g2, 1), (p1, 2), (p2, 3), (both, 2), (neither, 1)):  # g3 does not answer
        shop.respond(poll, customer_id, option=option)

    with any_db.session() as session:
        results = campaign_results(session, shop.program, poll, shop.clock.current,
                                   segments=["gold members", holders, holders])  # a name, an id; said twice
    assert results.options == [("Free shipping", 3), ("New colours", 2), ("Faster delivery", 1)]
    by_segment = {answers.name: answers for answers in results.options_by_segment}
    assert list(by_segment) == ["Gold members", "Point holders"]
    gold_answers, holder_answers = by_segment["Gold members"], by_segment["Point holders"]
    assert (gold_answers.members, gold_answers.messaged, gold_answers.answered) == (5, 4, 3)
    assert gold_answers.counts == [2, 1, 0] and gold_answers.shares == [2 / 3, 1 / 3, 0.0]
    assert (holder_answers.members, holder_answers.messaged, holder_answers.answered) == (3, 3, 3)
    assert holder_answers.counts == [0, 2, 1] and holder_answers.ref == holders
    assert results.options_by_tier == {"Gold": [2, 1, 0], "Bronze": [1, 1, 1]}

    with any_db.session() as session:
        with pytest.raises(CampaignError, match="no segment 'nobody'"):
            campaign_results(session, shop.program, poll, shop.clock.current, segments=["nobody"])
    message = shop.campaign([g1], text="Hi")
    shop.send(message)
    with any_db.session() as session:
        with pytest.raises(CampaignError, match="answers per segment are a poll's"):
            campaign_results(session, shop.program, message, shop.clock.current, segments=[holders])


# -- segments -------------------------------------------------------------------------------------------------------


def test_a_segment_is_the_audience_and_poll_answers_make_a_segment(shop: Shop) -> None:
    from bot.segments.filters import SegmentFilter
    from bot.segments.service import save_segment

    members = [shop.customer(telegram=str(600 + n)) for n in range(4)]
    poll = _sent_poll(shop, *members)
    shop.respond(poll, members[0], option=1)
    shop.respond(poll, members[1], option=1)
    shop.respond(poll, members[2], option=2)
    with shop.database.session(write=True) as session:
        save_segment(session, "Want free shipping", SegmentFilter.from_json(
            [{"kind": "poll_answer", "campaign": poll, "option": 1}]), by="test", now=shop.clock.current,
            program=shop.program)
    with shop.database.session(write=True) as session:
        follow_up = create_campaign(session, shop.program, name="Free shipping week", text="{first_name}: it's free!",
                                    audience={"segment": "want free shipping"}, now=shop.clock.current).id
    plan = shop.dry_run(follow_up)
    assert [row.customer_id for row in plan.recipients] == members[:2]
    shop.respond(poll, members[3], option=1)  # the segment is read again at the send
    assert shop.send(follow_up).queued == 3
    with pytest.raises(CampaignError, match="no segment 'nobody'"):
        with shop.database.session(write=True) as session:
            create_campaign(session, shop.program, name="x", text="x", audience={"segment": "nobody"},
                            now=shop.clock.current)
