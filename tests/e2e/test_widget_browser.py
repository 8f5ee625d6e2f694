"""The website widget end to end in headless Chromium: the web app's demo store page (/demo) with the widget
tag, the real Rasa server with the trained model and the action server, on the seeded demo shop.

Screenshots of what a shopper sees go to var/screenshots/widget-*.png."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import Customer
from bot.processes import ManagedProcess, free_port
from bot.runner import server_env, web_app_command
from bot.settings import PROJECT_ROOT, Settings
from channels.widget.sessions import conversation_of
from tests.browser import PHONE, WidgetOnPage, chromium, new_page, require_chromium, screenshot
from tests.fakes.threaded import ThreadedServers

pytestmark = pytest.mark.e2e

WEB_APP_READY_SECONDS = 120


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def store_url(rasa_server: ManagedProcess, e2e_env: Dict[str, str], e2e_dir: Path) -> Iterator[str]:
    """The web app (demo store page) as `make run` starts it, on the end-to-end data folder."""
    require_chromium()  # no servers for nothing
    env = {**e2e_env, "WEB_PORT": str(free_port()), "LOYALTY_JOBS_INTERVAL_MINUTES": "0"}
    settings = Settings.from_env(env)
    web_app = ManagedProcess("web app", web_app_command(), PROJECT_ROOT, server_env(env, settings),
                             e2e_dir / "web-widget.log")
    web_app.start()
    try:
        web_app.wait_until_ready(f"http://127.0.0.1:{settings.web_port}/health", timeout=WEB_APP_READY_SECONDS)
        yield f"http://127.0.0.1:{settings.web_port}"
    finally:
        web_app.stop()


def _open_store(browser: object, store_url: str, shopper: str = "guest", **context: object) -> WidgetOnPage:
    page = new_page(browser, **context)  # type: ignore[arg-type]
    page.goto(f"{store_url}/demo?as={shopper}")
    return WidgetOnPage(page)


def test_a_shopper_takes_the_quiz_by_clicking_and_gets_product_cards(browser: object, store_url: str) -> None:
    from playwright.sync_api import expect

    widget = _open_store(browser, store_url)
    widget.open()
    widget.send("help me choose")
    for title, next_question in (("Home office", "(2/5)"), ("Standing desk", "(3/5)"), ("Oak", "So far: Oak."),
                                 ("Done", "(4/5)"), ("None of these", "(5/5)")):
        button = widget.reply_button(title).last
        expect(button).to_be_enabled()
        button.click()
        expect(widget.bot_message(next_question).last).to_be_visible()
    widget.reply_button("Up to $400").last.click()
    cards = widget.page.locator("#rapport-widget li.card")
    expect(cards).to_have_count(3)
    expect(cards.first).to_contain_text("Rise standing desk")
    expect(cards.first).to_contain_text("$389 · because you said: a standing desk")
    link = cards.first.locator("a", has_text="View product")
    expect(link).to_have_attribute("href", "https://oak-and-ember.example/products/rise-standing-desk")
    expect(widget.reply_button("No thanks").last).to_be_enabled()  # the email question, with the consent wording
    expect(widget.bot_message("occasional Oak & Ember news").last).to_be_visible()
    screenshot(widget.page, "quiz")


def test_a_guest_chats_presses_a_button_and_gets_the_transcript_back(browser: object, store_url: str) -> None:
    from playwright.sync_api import expect

    widget = _open_store(browser, store_url)
    widget.open()
    widget.send("hi")
    expect(widget.bot_message("Hi again!")).to_be_visible()  # the widget greeted as it opened
    how_to_earn = widget.reply_button("How to earn").last
    expect(how_to_earn).to_be_enabled()
    screenshot(widget.page, "guest")

    how_to_earn.click()
    expect(widget.bot_message("points for every")).to_be_visible()
    # The button shows as used, and the shopper's side of the chat reads as they pressed it.
    expect(how_to_earn).to_have_attribute("aria-pressed", "true")
    expect(how_to_earn).to_be_disabled()
    expect(widget.user_messages.last).to_have_text("How to earn")
    token = widget.session_token()

    widget.page.reload()
    widget.open()
    expect(widget.bot_message("points for every")).to_be_visible()
    transcript = widget.transcript()
    assert transcript.index("hi") < transcript.rindex("How to earn") < transcript.index("points for every")
    assert "/how_to_earn" not in transcript and "/greet" not in transcript
    assert widget.session_token() == token
    assert widget.page.js_errors == []  # type: ignore[attr-defined]
    screenshot(widget.page, "reloaded")


def test_on_a_phone_the_panel_fills_the_screen_and_works(browser: object, store_url: str) -> None:
    from playwright.sync_api import expect

    widget = _open_store(browser, store_url, viewport=PHONE, is_mobile=True, has_touch=True)
    widget.open()
    box = widget.panel.bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, PHONE["width"], PHONE["height"])
    widget.send("help")
    my_points = widget.reply_button("My points")
    expect(my_points).to_be_in_viewport()
    my_points.tap()
    expect(widget.user_messages.last).to_have_text("My points")
    widget.wait_for_bot_messages(2)
    screenshot(widget.page, "phone")


def test_the_widget_works_from_the_keyboard_alone(browser: object, store_url: str) -> None:
    from playwright.sync_api import expect

    widget = _open_store(browser, store_url)
    page = widget.page
    launcher_focused = """() => {
        const host = document.activeElement;
        return host?.id === 'rapport-widget' && host.shadowRoot.activeElement?.classList.contains('launcher');
    }"""
    for _ in range(60):  # the page's own links first, then the launcher
        page.keyboard.press("Tab")
        if page.evaluate(launcher_focused):
            break
    assert page.evaluate(launcher_focused), "Tab never reached the chat button"
    page.keyboard.press("Enter")
    expect(widget.panel).to_be_visible()
    expect(widget.input).to_be_focused()
    page.keyboard.type("hi")
    page.keyboard.press("Enter")
    expect(widget.bot_message("Hi again!")).to_be_visible()
    expect(widget.reply_button("Help me choose").last).to_be_visible()
    page.keyboard.press("Escape")
    expect(widget.panel).to_be_hidden()
    assert page.evaluate(launcher_focused), "closing did not return the focus to the chat button"


@pytest.mark.parametrize("copied", ["session token", "bare conversation id"])
def test_another_browser_with_a_copied_session_sees_and_writes_nothing_of_the_first(
    browser: object, store_url: str, copied: str
) -> None:
    from playwright.sync_api import expect

    first = _open_store(browser, store_url)
    first.open()
    first.send("my order number is 4242")
    token = first.session_token()

    second = _open_store(browser, store_url)
    stolen = token if copied == "session token" else token.split(".", 1)[0]
    second.store_session_token(stolen)
    second.page.reload()
    second.open()
    second.page.wait_for_function("stolen => window.RapportWidget.sessionId !== stolen", arg=stolen)
    assert conversation_of(second.session_token()) != conversation_of(token)
    second.send("hello from the second browser")
    assert "4242" not in second.transcript()

    # The first conversation answers its own next message, and never showed the second's.
    first.send("are you still there?")
    expect(first.user_messages.last).to_have_text("are you still there?")
    assert "second browser" not in first.transcript()
    assert first.session_token() == token


def test_signed_in_as_alice_the_widget_answers_with_her_balance(browser: object, store_url: str,
                                                                e2e_env: Dict[str, str]) -> None:
    from playwright.sync_api import expect

    # The seeded 1,598 — read rather than assumed, as other end-to-end tests share the store.
    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session() as session:
            alice = session.execute(select(Customer).where(Customer.email == "alice.moreau@example.com")).scalar_one()
            balance = alice.points_balance
    finally:
        database.dispose()

    widget = _open_store(browser, store_url, "alice", timezone_id="America/Chicago")  # her browser's zone
    expect(widget.page.locator("#signed-in-as")).to_have_text("Signed in as Alice")
    widget.open()
    widget.send("how many points do I have?")
    expect(widget.bot_message(f"you have {balance:,} points")).to_be_visible()
    screenshot(widget.page, "alice")
    # The widget told the server her time zone: proactive messages keep quiet hours in it.
    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session() as session:
            assert session.execute(select(Customer.time_zone).where(Customer.id == alice.id)).scalar_one() == "America/Chicago"
    finally:
        database.dispose()


def test_the_widget_greets_a_guest_as_it_opens_with_what_it_can_do(browser: object, store_url: str) -> None:
    from playwright.sync_api import expect

    widget = _open_store(browser, store_url)
    widget.open()  # nothing typed
    expect(widget.bot_message("I can help you choose or find a product")).to_be_visible()
    for title in ("Help me choose", "How to earn", "Link my account", "Talk to a person"):
        expect(widget.reply_button(title)).to_be_enabled()
    assert widget.user_messages.count() == 0  # the greeting's trigger is not shown as the shopper's
    screenshot(widget.page, "greeting-guest")
    widget.reply_button("How to earn").click()
    expect(widget.bot_message("points for every")).to_be_visible()

    widget.page.reload()  # the transcript comes back with the greeting, and no second greeting
    widget.open()
    expect(widget.bot_message("points for every")).to_be_visible()
    expect(widget.bot_message("I can help you choose")).to_have_count(1)
    assert "/greet" not in widget.transcript()


def test_the_widget_greets_alice_by_name_with_tier_balance_and_a_suggestion(
        browser: object, store_url: str, e2e_env: Dict[str, str]) -> None:
    from playwright.sync_api import expect

    database = Database(Settings.from_env(e2e_env).database_url)
    try:
        with database.session() as session:
            balance = session.execute(select(Customer.points_balance)
                                      .where(Customer.email == "alice.moreau@example.com")).scalar_one()
    finally:
        database.dispose()
    widget = _open_store(browser, store_url, "alice")
    expect(widget.page.locator("#signed-in-as")).to_have_text("Signed in as Alice")
    widget.open()
    greeting = widget.bot_message("Hi Alice!")
    expect(greeting).to_be_visible()
    expect(greeting).to_contain_text(f"member with {balance:,} points")
    expect(widget.page.locator("#rapport-widget .replies button").first).to_be_enabled()  # the suggestion's button
    screenshot(widget.page, "greeting-alice")


# -- how the widget renders, against the channel with a scripted conversation (no model) --------------------

PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5f0d1f40000000049454e44ae426082"
)
MARKUP = '<img src=x onerror="window.injected=1">Line one\nLine two: https://oak-and-ember.example/help?x=1.'


class ScriptedAgent:
    """Answers "cards", "image" and "markup" with those kinds of response; anything else with text."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def handle_message(self, message: Any) -> None:
        responses = {
            "cards": {"text": "Two picks for you:", "elements": [
                {"title": "Linden lounge chair", "subtitle": "$349.00", "image_url": f"{self.base_url}/pixel.png",
                 "buttons": [{"title": "View", "url": "https://oak-and-ember.example/products/linden", "type": "web_url"},
                             {"title": "Similar", "payload": "/similar"}]},
                {"title": "Ember floor lamp", "subtitle": "$149.00",
                 "buttons": [{"title": "View", "url": "https://oak-and-ember.example/products/ember", "type": "web_url"}]},
            ]},
            "image": {"image": f"{self.base_url}/pixel.png"},
            "markup": {"text": MARKUP},
        }
        reply = responses.get(message.text, {"text": f"you said: {message.text}"})
        await message.output_channel.send_response(message.sender_id, dict(reply))


class ScriptedWidgetServer:
    """A Sanic server with the widget channel, a store page carrying the tag, and ScriptedAgent."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self._server: Any = None
        self._database: Optional[Database] = None

    async def start(self) -> None:
        from rasa.core.channels.channel import register
        from sanic import Sanic, response

        from channels.widget.inbound import WidgetInput

        settings = Settings.from_env({"RAPPORT_DATA_DIR": str(self.data_dir), "WIDGET_SIGNING_SECRET": SCRIPTED_SECRET})
        self._database = Database(settings.database_url)
        self._database.create_schema()
        Sanic.test_mode = True
        app = Sanic(f"widget_rendering_{uuid.uuid4().hex[:8]}")
        channel = WidgetInput(settings, self._database)
        register([channel], app, route="/webhooks/")

        @app.get("/store")
        async def store(request: Any) -> Any:
            customer = request.args.get("customer_token")
            identity = (f' data-customer-id="store-1" data-customer-token="{customer}"' if customer else "")
            return response.html(f'<!doctype html><html><head><title>Test store</title></head><body><h1>Test store</h1>'
                                 f'<script src="/webhooks/widget/widget.js" data-title="Test &amp; Co"{identity} async>'
                                 f'</script></body></html>')

        @app.get("/pixel.png")
        async def pixel(_request: Any) -> Any:
            return response.raw(PIXEL_PNG, content_type="image/png")

        # A free port of our own: Sanic 21.12 reads port=0 as its default, 8000.
        self._server = await app.create_server(host="127.0.0.1", port=free_port(), return_asyncio_server=True)
        await self._server.startup()
        await self._server.before_start()
        await self._server.after_start()
        self.url = f"http://127.0.0.1:{self._server.server.sockets[0].getsockname()[1]}"
        app.ctx.agent = ScriptedAgent(self.url)
        self._channel = channel

    async def stop(self) -> None:
        if self._channel.sio is not None:
            await self._channel.sio.shutdown()
        await self._server.before_stop()
        self._server.close()
        await self._server.wait_closed()
        await self._server.after_stop()
        if self._database is not None:
            self._database.dispose()
        # engine.io's per-socket ping tasks sleep on after their sockets closed; this loop ends now.
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


SCRIPTED_SECRET = "scripted-widget-secret"


@pytest.fixture(scope="module")
def scripted_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    servers = ThreadedServers(widget=ScriptedWidgetServer(tmp_path_factory.mktemp("scripted-widget")))
    servers.start()
    try:
        yield servers.servers["widget"].url
    finally:
        servers.stop()


def test_cards_images_links_and_markup_render_safely(browser: object, scripted_store: str) -> None:
    from playwright.sync_api import expect

    widget = WidgetOnPage(new_page(browser))  # type: ignore[arg-type]
    widget.page.goto(f"{scripted_store}/store")
    widget.open()

    widget.send("cards")
    cards = widget.page.locator("#rapport-widget li.card")
    expect(cards).to_have_count(2)  # one message with both cards
    expect(widget.page.locator("#rapport-widget li.cards-item")).to_have_count(1)
    first = cards.first
    expect(first.locator("h3")).to_have_text("Linden lounge chair")
    expect(first.locator("p")).to_have_text("$349.00")
    expect(first.locator("img")).to_have_attribute("src", f"{scripted_store}/pixel.png")
    view = first.get_by_role("link", name="View")
    expect(view).to_have_attribute("href", "https://oak-and-ember.example/products/linden")
    expect(view).to_have_attribute("target", "_blank")
    expect(view).to_have_attribute("rel", "noopener noreferrer")
    before = widget.bot_messages.count()
    first.get_by_role("button", name="Similar").click()
    widget.wait_for_bot_messages(before + 1)
    expect(widget.user_messages.last).to_have_text("Similar")
    expect(widget.bot_message("you said: /similar")).to_be_visible()
    screenshot(widget.page, "cards")

    widget.send("image")
    image = widget.page.locator("#rapport-widget li.message.bot img.image")
    expect(image).to_have_attribute("src", f"{scripted_store}/pixel.png")
    widget.page.wait_for_function(
        "() => document.querySelector('#rapport-widget').shadowRoot.querySelector('img.image').naturalWidth === 1")

    widget.send("markup")
    message = widget.bot_message("Line one")
    expect(message).to_contain_text('<img src=x onerror="window.injected=1">Line one')  # shown, not run
    assert message.locator("img").count() == 0 and message.locator("br").count() == 1
    link = message.get_by_role("link")
    expect(link).to_have_attribute("href", "https://oak-and-ember.example/help?x=1")  # the full stop left out
    expect(link).to_have_attribute("target", "_blank")
    assert widget.page.evaluate("() => window.injected") is None
    assert widget.page.js_errors == []  # type: ignore[attr-defined]
    widget.page.context.close()


def test_an_invalid_customer_token_pauses_the_chat_with_a_notice(browser: object, scripted_store: str) -> None:
    from playwright.sync_api import expect

    widget = WidgetOnPage(new_page(browser))  # type: ignore[arg-type]
    widget.page.goto(f"{scripted_store}/store?customer_token={'0' * 64}")
    widget.launcher.click()  # the refusal may disable the input before it could take the focus
    notice = widget.page.locator("#rapport-widget li.message.notice")
    expect(notice).to_contain_text("couldn't confirm your account")
    expect(widget.input).to_be_disabled()
    assert widget.page.evaluate("() => window.RapportWidget.sessionId") is None  # no session was issued
    widget.page.context.close()
