"""A real support conversation run from the console to the end on each channel: the real Rasa server
(trained model, action server, every channel on, talking to the fake Telegram Bot API and Graph API), the web
app as `make run` starts it, the e2e store. The shopper asks for a person; the bot says once that a person
will reply and then stays quiet; an agent takes the request in the console, replies (delivered by the
channel's own sending), sees the shopper's answer without a reload, and hands the conversation back to the
bot, which answers the next message.

In headless Chromium for the widget (screenshots: var/screenshots/console-handoff-*.png and
widget-handoff*.png); over HTTP for Telegram and Instagram, with Instagram's 24-hour / 7-day rules."""
from __future__ import annotations

import hashlib
import hmac
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from sqlalchemy import select

from bot import clock
from bot.console.accounts import add_merchant, merchant_by_email
from bot.db import Database
from bot.handoff import RETURNED_BY_AGENT
from bot.models import HandoffMessage, HandoffRequest
from bot.processes import ManagedProcess, free_port
from bot.runner import server_env, web_app_command
from bot.settings import PROJECT_ROOT, Settings
from channels.widget.sessions import conversation_of
from tests.browser import PHONE, WidgetOnPage, chromium, new_page, require_chromium, screenshot
from tests.e2e.test_instagram_e2e import fresh_sender, signature, text_message
from tests.e2e.test_telegram_e2e import TelegramChat, texts
from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
OLIVE = "olive.handoff@oak-and-ember.example"
WAIT_SECONDS = 60
QUIET_SECONDS = 4
STAY_QUIET = "I'll stay quiet"


@pytest.fixture(scope="module")
def store_db(e2e_env: Dict[str, str]) -> Iterator[Database]:
    database = Database(Settings.from_env(e2e_env).database_url)
    with database.session(write=True) as session:
        if merchant_by_email(session, OLIVE) is None:
            add_merchant(session, OLIVE, "Olive", "agent", PASSWORD, clock.now())
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def web_url(rasa_server: ManagedProcess, e2e_env: Dict[str, str], e2e_dir: Path) -> Iterator[str]:
    env = {**e2e_env, "WEB_PORT": str(free_port()), "LOYALTY_JOBS_INTERVAL_MINUTES": "0"}
    settings = Settings.from_env(env)
    web_app = ManagedProcess("web app", web_app_command(), PROJECT_ROOT, server_env(env, settings),
                             e2e_dir / "web-handoff.log")
    web_app.start()
    try:
        web_app.wait_until_ready(f"http://127.0.0.1:{settings.web_port}/health", timeout=120)
        yield f"http://127.0.0.1:{settings.web_port}"
    finally:
        web_app.stop()


def wait_for(condition: Any, what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def live_request(db: Database, channel: str, sender: str) -> HandoffRequest:
    def found() -> Optional[HandoffRequest]:
        with db.session() as session:
            return session.execute(select(HandoffRequest).where(
                HandoffRequest.channel == channel, HandoffRequest.sender_id == sender)
                .order_by(HandoffRequest.id.desc())).scalars().first()
    return wait_for(found, f"a handoff request of {channel}:{sender}")


TRANSCRIPTS = PROJECT_ROOT / "var" / "handoff-transcripts"


def save_transcript(db: Database, request_id: int, name: str) -> Path:
    """The whole conversation as the store kept it — before the shopper asked, then the live handoff — in
    var/handoff-transcripts/<name>.txt, to read what a run did."""
    from bot.handoff import handoff_detail

    with db.session() as session:
        detail = handoff_detail(session, request_id)
        lines = [f"Handoff #{request_id} on {detail.request.channel} — why: {detail.request.reason}", ""]
        lines += [f"{turn.get('role', '?'):>8}: {turn.get('text', '')}" for turn in detail.turns]
        lines.append("   --- a person has the conversation ---")
        for message in detail.messages:
            who = {"shopper": "shopper", "bot": "bot", "agent": message.author_name or "agent",
                   "note": f"(note) {message.author_name}", "event": "(event)"}[message.role]
            delivery = f"   [{message.delivery}{' · ' + message.delivery_note if message.delivery_note else ''}]" \
                if message.delivery else ""
            lines.append(f"{who:>8}: {message.text}{delivery}")
        lines.append(f"   --- status {detail.request.status}, {detail.request.resolution} ---")
    TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
    path = TRANSCRIPTS / f"{name}.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class ConsoleClient:
    """The console over HTTP, as a browser without scripts uses it: cookies, the page's CSRF token, forms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""

    def get(self, path: str) -> str:
        with self.opener.open(self.url + path, timeout=60) as response:
            html = response.read().decode()
        found = re.search(r'name="csrf_token" value="([^"]+)"', html)
        self.csrf = found.group(1) if found else self.csrf
        return html

    def post(self, path: str, form: Dict[str, str], json_answer: bool = False) -> Tuple[int, str]:
        data = urllib.parse.urlencode({"csrf_token": self.csrf, **form}).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers={"Accept": "application/json"} if json_answer else {})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def sign_in(self, email: str = OLIVE) -> None:
        self.get("/console/login")
        status, _ = self.post("/console/login", {"email": email, "password": PASSWORD})
        assert status == 200, "signed in and redirected to a console page"


WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"""


def assert_fits(page: Any) -> None:
    """Nothing on the page reaches past the screen's right edge (no sideways scrolling)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], \
        page.evaluate(WIDER_THAN_THE_SCREEN)


# --- the widget, in the browser --------------------------------------------------------------------


def test_an_agent_runs_a_widget_conversation_from_the_console(store_db: Database, web_url: str) -> None:
    require_chromium()
    from playwright.sync_api import expect

    with chromium() as browser:
        widget = WidgetOnPage(new_page(browser))
        widget.page.goto(f"{web_url}/demo?as=guest")
        widget.open()
        widget.send("my oak table came with a cracked leg, I want to talk to a real person")
        expect(widget.reply_button("Yes, connect me").last).to_be_enabled()
        widget.reply_button("Yes, connect me").last.click()
        expect(widget.bot_message("I've passed this conversation").last).to_be_visible()
        expect(widget.bot_message(STAY_QUIET).last).to_be_visible()
        conversation = conversation_of(widget.session_token())
        request = live_request(store_db, "widget", conversation)
        assert request.reason and "cracked leg" in request.reason

        # The agent signs in, finds the request in the queue and takes it.
        console = new_page(browser)
        console.goto(f"{web_url}/console/handoffs")
        console.fill("input[name=email]", OLIVE)
        console.fill("input[name=password]", PASSWORD)
        console.click("button:has-text('Sign in')")
        row = console.locator(f"#handoff-{request.id}")
        expect(row).to_contain_text("cracked leg")
        expect(row).to_contain_text("widget")
        expect(console.locator("#open-handoffs")).to_be_visible()
        screenshot(console, "handoff-queue", prefix="console")
        row.locator("a").first.click()
        console.click("#assign-me")
        expect(console.locator("#handoff-assignee")).to_have_text("Olive")

        # The reply reaches the open widget through its socket; HTML in it stays text on both sides.
        console.fill("#reply-text", "Hi, Olive here <b>from the team</b>. Could you send a photo of the leg?")
        console.click("#reply-form button")
        expect(widget.bot_message("Olive: Hi, Olive here <b>from the team</b>").last).to_be_visible()
        expect(console.locator("#live-transcript li.agent").last).to_contain_text("<b>from the team</b>")
        expect(console.locator("#live-transcript li.agent .delivery").last).to_contain_text("sent")
        assert console.locator("#live-transcript b").count() == 0

        # The shopper answers; the bot stays quiet and the agent sees it without a reload.
        bot_lines = widget.bot_messages.count()
        widget.input.fill("sure, it's the front left leg, the one near the drawer")
        widget.input.press("Enter")
        expect(console.locator("#live-transcript li.shopper").last).to_contain_text("front left leg")
        expect(console.locator("#handoff-status")).to_have_text("open")
        time.sleep(QUIET_SECONDS)
        assert widget.bot_messages.count() == bot_lines, "the bot stayed quiet while a person had the chat"
        console.fill("#note-text", "Replacement leg: SKU OE-LEG-4 <script>alert(1)</script>")
        console.click("form.note button")
        expect(console.locator("#live-transcript li.note").last).to_contain_text("<script>alert(1)</script>")
        screenshot(console, "handoff-conversation", prefix="console")
        screenshot(widget.page, "handoff")

        # The same transcript, on a phone.
        phone = new_page(browser, viewport=PHONE, is_mobile=True, has_touch=True)
        phone.context.add_cookies(console.context.cookies())
        phone.goto(console.url)
        expect(phone.locator("#live-transcript li.shopper").last).to_contain_text("front left leg")
        assert_fits(phone)
        screenshot(phone, "handoff-conversation-phone", prefix="console")

        # Back to the bot: the shopper is told, and the bot answers the next message.
        console.click("#return-to-bot")
        expect(widget.bot_message("You're back with the bot").last).to_be_visible()
        widget.send("how do I earn points?")
        expect(widget.bot_message("points for every").last).to_be_visible()

        # On the next visit the transcript has the person's part of the conversation too.
        widget.page.reload()
        widget.open()
        expect(widget.bot_message("Olive: Hi, Olive here").last).to_be_visible()
        transcript = widget.transcript()
        assert transcript.index("talk to a real person") < transcript.index("Olive: Hi") \
            < transcript.index("front left leg") < transcript.index("You're back with the bot") \
            < transcript.index("how do I earn points?")
        assert widget.page.js_errors == [] and console.js_errors == []  # type: ignore[attr-defined]
        screenshot(widget.page, "handoff-reloaded")
        save_transcript(store_db, request.id, "widget")


# --- Telegram and Instagram, over HTTP -----------------------------------------------------------------


def _messages(db: Database, request_id: int) -> List[Tuple[str, str, Optional[str]]]:
    with db.session() as session:
        return [(m.role, m.text, m.delivery) for m in session.execute(
            select(HandoffMessage).where(HandoffMessage.handoff_id == request_id).order_by(HandoffMessage.id)).scalars()]


def test_an_agent_runs_a_telegram_conversation_from_the_console(
    store_db: Database, web_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    chat = TelegramChat(e2e_env, platform_fakes)
    asked = texts(chat.say("can I talk to a human? my parcel never came"))
    assert "pass this conversation to a person" in asked
    told = texts(chat.say("yes"))
    assert "I've passed this conversation" in told and STAY_QUIET in told
    request = live_request(store_db, "telegram", str(chat.chat_id))

    before = len(chat.sent())
    status, body = chat.post(chat.message_update("order 1042, the tracking hasn't moved in a week"))
    assert status == 200 and body["ok"]
    time.sleep(QUIET_SECONDS)
    assert len(chat.sent()) == before, "the bot stayed quiet"

    agent = ConsoleClient(web_url)
    agent.sign_in()
    page = agent.get(f"/console/handoffs/{request.id}")
    assert "tracking hasn&#39;t moved in a week" in page
    status, answer = agent.post(f"/console/handoffs/{request.id}/reply",
                                {"text": "Sorry Robin! I've asked the courier, you'll hear from me today."}, True)
    assert (status, json.loads(answer)["ok"]) == (200, True)
    [reply] = chat.wait_for_sent(before + 1)[before:]
    assert reply["text"] == "Olive: Sorry Robin! I've asked the courier, you'll hear from me today."
    wait_for(lambda: _messages(store_db, request.id)[-1][2] == "sent", "the reply marked sent")

    agent.post(f"/console/handoffs/{request.id}/return", {})
    back = chat.wait_for_sent(before + 2)[before + 1:]
    assert texts(back) == RETURNED_BY_AGENT
    answered = texts(chat.say("how do I earn points?"))
    assert "points for every" in answered
    save_transcript(store_db, request.id, "telegram")


def _instagram(url: str, secret: str, sender: str, text: str) -> None:
    body = text_message(sender, text)
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature(body, secret)})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200


def _graph_bodies(fakes: ThreadedServers, recipient: str) -> List[Dict[str, Any]]:
    graph = fakes.servers["graph"]
    return [m for m in fakes.call(graph.snapshot()) if m["recipient"]["id"] == recipient]


def test_an_agent_answers_on_instagram_inside_metas_windows(
    store_db: Database, web_url: str, e2e_env: Dict[str, str], platform_fakes: ThreadedServers
) -> None:
    url = f"http://127.0.0.1:{e2e_env['RASA_PORT']}/webhooks/instagram/webhook"
    secret = e2e_env["INSTAGRAM_APP_SECRET"]
    shopper = fresh_sender()
    for text in ("can I talk to a human please", "yes"):
        count = len(_graph_bodies(platform_fakes, shopper))
        _instagram(url, secret, shopper, text)
        wait_for(lambda: len(_graph_bodies(platform_fakes, shopper)) > count, "the bot's answer")
    assert STAY_QUIET in "\n".join(m["message"].get("text", "") for m in _graph_bodies(platform_fakes, shopper))
    request = live_request(store_db, "instagram", shopper)
    agent = ConsoleClient(web_url)
    agent.sign_in()

    def reply(text: str) -> Dict[str, Any]:
        count = len(_graph_bodies(platform_fakes, shopper))
        agent.get(f"/console/handoffs/{request.id}")
        status, answer = agent.post(f"/console/handoffs/{request.id}/reply", {"text": text}, True)
        assert status == 200, answer
        return wait_for(lambda: _graph_bodies(platform_fakes, shopper)[count:], "the reply at the Graph API")[0]

    # Inside 24 hours of the shopper's last message: a normal message.
    inside = reply("Hi, Olive here: which order is it?")
    assert inside["message"]["text"] == "Olive: Hi, Olive here: which order is it?" and "tag" not in inside

    # Two days later (the shopper's last message moved back, as the days would): tagged HUMAN_AGENT.
    def last_wrote(days: float) -> None:
        with store_db.session(write=True) as session:
            session.get(HandoffRequest, request.id).last_shopper_at = clock.now() - timedelta(days=days)
    last_wrote(2)
    tagged = reply("The refund went out today.")
    assert (tagged["messaging_type"], tagged["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    # Eight days: the console refuses and says why; nothing reaches Meta.
    last_wrote(8)
    count = len(_graph_bodies(platform_fakes, shopper))
    page = agent.get(f"/console/handoffs/{request.id}")
    assert "Instagram&#39;s window is closed" in page and 'id="reply-form"' not in page
    status, answer = agent.post(f"/console/handoffs/{request.id}/reply", {"text": "Hello?"}, True)
    assert status == 409 and json.loads(answer)["window_closed"] is True
    time.sleep(QUIET_SECONDS / 2)
    assert len(_graph_bodies(platform_fakes, shopper)) == count
    agent.post(f"/console/handoffs/{request.id}/return", {})
    save_transcript(store_db, request.id, "instagram")
