"""Transcripts as the shopper saw them, through the real app: a conversation read from Rasa's events (the
action's conversation_turns) keeps the bot's buttons and product cards when it is stored, and every console
view of it — the feedback page, the handoff page and its live event stream, the handoff queue, the customer
page's conversations — shows them, with every reward and friend code masked but its last 4, as the feedback
CSV export and the customer data export (JSON) do. The masking is bot/checkout.py's mask_codes_in."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any, Dict, List

import pytest
from rasa_sdk import Tracker

from actions.handoff import conversation_turns
from bot.audit import record
from bot.checkout import mask_code, mask_codes_in
from bot.feedback.transcripts import clean_turns, store_transcript
from bot.handoff import agent_reply, request_handoff, route_shopper_message
from bot.identity import create_customer, link_identity
from bot.models import Feedback, Merchant
from bot.privacy import export_customer_data
from tests.web.console import Console, make_merchant
from tests.web.test_console_handoffs import flat, open_stream
from tests.web.test_console_overview import page, signed_in

REWARD, FRIEND = "RW-7K2M-9QXD-4HTP", "FRIEND-K7QM-2XDA"
REWARD_SHOWN, FRIEND_SHOWN = "RW-••••-••••-4HTP", "FRIEND-••••-2XDA"
SECRET_PARTS = ("7K2M", "9QXD", "K7QM")  # what masking hides: none of it may reach a page or a file
LAMP_URL = "https://shop.example/products/oak-lamp"


def _events(start: float) -> List[Dict[str, Any]]:
    """Rasa's events of a conversation: a quick-reply question, a tap, product cards, a reward code, a friend
    code typed by the shopper (the way Rasa's trackers hold them)."""
    said = [
        {"event": "user", "text": "show me lamps", "parse_data": {"intent": {"name": "search_products"}}},
        {"event": "bot", "text": "Here are two lamps:", "data": {"elements": [
            {"title": "Oak lamp", "subtitle": "$89.00 · warm light", "image_url": "https://cdn.example/lamp.jpg",
             "buttons": [{"title": "View product", "url": LAMP_URL, "type": "web_url"}]},
            {"title": "Brass lamp", "subtitle": "$120.00", "buttons": [{"title": "More like this",
                                                                        "payload": "/more{\"id\": 2}"}]}]}},
        {"event": "bot", "text": "Want to use your points?", "data": {"buttons": [
            {"title": "Yes, redeem 500", "payload": "/redeem{\"reward\": \"five\"}"},
            {"title": "No thanks", "payload": "/deny"}]}},
        {"event": "user", "text": "/redeem{\"reward\": \"five\"}", "parse_data": {"intent": {"name": "redeem"}}},
        {"event": "bot", "text": f"Done! Here's your code for $5 off:\n{REWARD}\nUse it at checkout."},
        {"event": "user", "text": f"my friend gave me {FRIEND.lower()} too", "parse_data": {"intent": {"name": "x"}}},
        {"event": "bot", "text": None, "data": {"buttons": [{"title": f"Use code {FRIEND}", "payload": FRIEND}]}},
    ]
    return [{**event, "timestamp": start + index} for index, event in enumerate(said)]


def test_the_greeting_a_channel_asked_for_is_not_shown_as_the_shoppers_words() -> None:
    events = [{"event": "user", "text": "/greet", "timestamp": 1.0},
              {"event": "bot", "text": "Hi! I'm Oak & Ember's assistant.", "timestamp": 2.0},
              {"event": "user", "text": "can I talk to a human please", "timestamp": 3.0},
              {"event": "bot", "text": "Hi again!", "data": {"buttons": [{"title": "Hi", "payload": "/greet"}]},
               "timestamp": 4.0},
              {"event": "user", "text": "/greet", "timestamp": 5.0}]
    turns = conversation_turns(Tracker("1", {}, None, events, False, None, {}, "action_listen"))
    assert [(t["role"], t["text"]) for t in turns] == [
        ("bot", "Hi! I'm Oak & Ember's assistant."), ("shopper", "can I talk to a human please"),
        ("bot", "Hi again!"), ("shopper", "Hi")]  # a tap on a "Hi" button is the shopper's


def _seed(console: Console, now) -> Dict[str, int]:
    tracker = Tracker("100", {}, None, _events(now.timestamp() - 600), False, None, {}, "action_listen")
    turns = conversation_turns(tracker)
    with console.db.session(write=True) as session:
        ann = create_customer(session, "ann@example.com", "Ann").id
        link_identity(session, ann, "telegram", "100")
        kept = store_transcript(session, channel="telegram", sender_id="100", customer_id=ann, order_id=None,
                                reason="handoff", turns=turns, redact=True, now=now)
        feedback = Feedback(channel="telegram", sender_id="100", customer_id=ann, kind="csat", score=2,
                            comment=f"{REWARD} did not work", sentiment="negative", topics=[], search_text="",
                            status="new", goodwill_points=0, transcript_id=kept.id, created_at=now, updated_at=now)
        session.add(feedback)
        request = request_handoff(session, "telegram", "100", ann, clean_turns(turns[-4:], redact_text=True),
                                  reason=f"my friend gave me {FRIEND} and it fails", now=now)
        request.transcript_id = kept.id
        session.flush()
        ids = {"customer": ann, "feedback": feedback.id, "handoff": request.id}
    route_shopper_message("telegram", "100", f"it still says {REWARD} is unknown", now + timedelta(minutes=1),
                          database=console.db)
    make_merchant(console.db, "rita@shop.example", "agent", "Rita")
    with console.db.session(write=True) as session:
        agent = session.query(Merchant).filter_by(email="rita@shop.example").one()
        agent_reply(session, ids["handoff"], agent, f"I've reissued it: {REWARD.replace('4HTP', '8WXY')}",
                    now + timedelta(minutes=2))
    return ids


def assert_masked(text: str, where: str) -> None:
    for part in SECRET_PARTS:
        assert part not in text.upper(), f"{where} shows a code whole: …{part}…"


def test_one_helper_masks_codes_as_the_bot_writes_them_and_as_shoppers_type_them() -> None:
    assert mask_code(REWARD) == REWARD_SHOWN and mask_code(FRIEND) == FRIEND_SHOWN
    assert mask_codes_in(f"Your code:\n{REWARD}\nand {FRIEND}.") == f"Your code:\n{REWARD_SHOWN}\nand {FRIEND_SHOWN}."
    assert mask_codes_in("rw 7k2m 9qxd 4htp") == "rw •••• •••• 4htp"
    assert mask_codes_in("FRIEND K7QM2XDA") == "FRIEND ••••2XDA"
    for words in ("a friend with dogs", "order #RW-1042", "FRIENDS-ABCD-EFGH", "rewards"):
        assert mask_codes_in(words) == words


def test_a_stored_conversation_keeps_the_buttons_and_cards_the_shopper_saw(console: Console, clock) -> None:
    tracker = Tracker("100", {}, None, _events(clock.current.timestamp()), False, None, {}, "action_listen")
    stored = clean_turns(conversation_turns(tracker), redact_text=True)
    assert [turn["role"] for turn in stored] == ["shopper", "bot", "bot", "shopper", "bot", "shopper", "bot"]
    cards = stored[1]["cards"]
    assert [card["title"] for card in cards] == ["Oak lamp", "Brass lamp"]
    assert cards[0] == {"title": "Oak lamp", "subtitle": "$89.00 · warm light", "image_url": "https://cdn.example/lamp.jpg",
                        "buttons": [{"title": "View product", "url": LAMP_URL}]}
    assert stored[2]["buttons"] == [{"title": "Yes, redeem 500"}, {"title": "No thanks"}]
    assert stored[3]["text"] == "Yes, redeem 500", "a tap reads as the button's title"
    assert stored[6] == {"role": "bot", "text": "", "at": stored[6]["at"],
                         "buttons": [{"title": f"Use code {FRIEND}"}]}, "buttons alone are a turn too"


async def test_every_transcript_view_shows_buttons_and_cards_with_codes_masked(any_console: Console, clock) -> None:
    ids = _seed(any_console, clock.current)
    await signed_in(any_console, "owner")

    views = {
        "feedback page": f"/console/feedback/{ids['feedback']}",
        "handoff page": f"/console/handoffs/{ids['handoff']}",
        "customer page": f"/console/customers/{ids['customer']}",
    }
    for where, path in views.items():
        html = await page(any_console, path)
        assert_masked(html, where)
        text = flat(html)
        assert REWARD_SHOWN in text, where
        assert "Oak lamp" in text and "$89.00 · warm light" in text and "Brass lamp" in text, where
        assert 'class="quick-reply">Yes, redeem 500<' in html and 'class="quick-reply">No thanks<' in html, where
        assert f'href="{LAMP_URL}"' in html and ">View product</a>" in html, where
        assert f"Use code {FRIEND_SHOWN}" in text, where
    handoff = flat(await page(any_console, views["handoff page"]))
    assert f"my friend gave me {FRIEND_SHOWN} and it fails" in handoff, "the reason"
    assert "it still says RW-••••-••••-4HTP is unknown" in handoff, "the shopper's live message"
    assert "I've reissued it: RW-••••-••••-8WXY" in handoff, "the agent's reply"
    assert_masked(await page(any_console, "/console/handoffs"), "handoff queue")
    assert_masked(await page(any_console, "/console/feedback"), "feedback inbox")
    with any_console.db.session(write=True) as session:  # the audit log quotes an agent's reply
        record(session, session.query(Merchant).filter_by(email="rita@shop.example").one(), "handoff_reply",
               f"handoff {ids['handoff']}", f"here it is: {REWARD}", clock.current)
    audit = await page(any_console, "/console/audit")
    assert_masked(audit, "audit log")
    assert f"here it is: {REWARD_SHOWN}" in flat(audit)

    stream = await open_stream(any_console, ids["handoff"])
    try:
        shown = [(await stream.next("message"))["text"] for _ in range(2)]
    finally:
        stream.close()
    assert shown == ["it still says RW-••••-••••-4HTP is unknown", "I've reissued it: RW-••••-••••-8WXY"]


async def test_the_exports_mask_codes_and_list_the_cards_and_buttons(console: Console, clock) -> None:
    ids = _seed(console, clock.current)
    await signed_in(console, "owner")
    response = await console.get("/console/feedback/export.csv")
    body = (await response.read()).decode("utf-8-sig")
    assert response.status == 200
    assert_masked(body, "feedback CSV")
    row = next(csv.DictReader(io.StringIO(body)))
    assert row["comment"] == f"{REWARD_SHOWN} did not work"
    transcript = row["transcript"]
    assert "]: Here are two lamps: [cards: Oak lamp — $89.00 · warm light; Brass lamp — $120.00]\n" in transcript
    assert "]: Want to use your points? [buttons: Yes, redeem 500 | No thanks]\n" in transcript
    assert f"\n{REWARD_SHOWN}\nUse it at checkout." in transcript
    assert transcript.endswith(f"]: [buttons: Use code {FRIEND_SHOWN}]")

    with console.db.session() as session:
        data = export_customer_data(session, ids["customer"], now=clock.current)
    exported = str(data["transcripts"]) + str(data["handoffs"])
    assert_masked(exported, "customer data export")
    assert REWARD_SHOWN in exported and FRIEND_SHOWN in exported and "Oak lamp" in exported


@pytest.mark.parametrize("hostile", ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>"])
async def test_a_button_or_card_never_links_anywhere_but_the_web(console: Console, clock, hostile: str) -> None:
    with console.db.session(write=True) as session:
        kept = store_transcript(session, channel="widget", sender_id="w", customer_id=None, order_id=None,
                                reason="feedback", redact=False, now=clock.current, turns=[
                                    {"role": "bot", "text": "<b>hi</b>", "at": clock.current,
                                     "buttons": [{"title": "<script>x</script>", "url": hostile}],
                                     "cards": [{"title": "Lamp", "image_url": hostile,
                                                "buttons": [{"title": "Go", "url": hostile}]}]}])
        feedback = Feedback(channel="widget", sender_id="w", kind="csat", score=1, topics=[], search_text="",
                            status="new", goodwill_points=0, transcript_id=kept.id, created_at=clock.current,
                            updated_at=clock.current)
        session.add(feedback)
        session.flush()
        feedback_id = feedback.id
    await signed_in(console, "owner")
    html = await page(console, f"/console/feedback/{feedback_id}")
    assert hostile.split(":")[0] + ":" not in html and "<script>x" not in html and "&lt;b&gt;hi" in html
    assert 'class="quick-reply">&lt;script&gt;x&lt;/script&gt;<' in html
