"""Headless Chromium for the website widget's and the merchant console's tests: Debian's /usr/bin/chromium
driven by Playwright's Python API (scripts/setup.sh installs it; Playwright's own browser download is never
used).

In CI a missing browser fails the tests; elsewhere they are skipped with the reason.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List

import pytest

from bot.settings import PROJECT_ROOT

if TYPE_CHECKING:  # Playwright is imported only once a browser is there to drive
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-dev-shm-usage"]
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"
# Generous: the first turn of a fresh Rasa server loads its pipeline; nothing here measures speed. Actions,
# waits and assertions (expect) all use it: a test waits for a state, and fails only when it never comes.
TIMEOUT_MS = 90_000
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 700}


def require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"{CHROMIUM} is missing: run scripts/setup.sh (Debian: apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator["Browser"]:
    """A headless Chromium for the duration of the block."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    from playwright.sync_api import expect

    # Playwright's assertions wait 5 s by default, its actions TIMEOUT_MS: on a busy machine a widget input
    # was still disabled after 5 s. Every wait here is for a state, as long as the actions allow.
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: "Browser", **context_options: Any) -> "Page":
    """A page in a context of its own (own localStorage: another browser, as far as the site can tell)."""
    context = browser.new_context(viewport=context_options.pop("viewport", DESKTOP), **context_options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: List[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def screenshot(page: "Page", name: str, *, prefix: str = "widget", full_page: bool = False) -> Path:
    """var/screenshots/<prefix>-<name>.png: the widget's tests use "widget", the console's "console"."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{prefix}-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class WidgetOnPage:
    """Our widget (channels/widget_assets/widget.js) as a shopper uses it. Playwright's CSS selectors
    reach into its open shadow root."""

    def __init__(self, page: "Page") -> None:
        self.page = page

    @property
    def launcher(self) -> "Locator":
        return self.page.locator("#rapport-widget button.launcher")

    @property
    def panel(self) -> "Locator":
        return self.page.locator("#rapport-widget #rapport-panel")

    @property
    def input(self) -> "Locator":
        return self.page.locator("#rapport-widget #rapport-input")

    @property
    def bot_messages(self) -> "Locator":
        return self.page.locator("#rapport-widget li.message.bot:not(.typing), #rapport-widget li.cards-item")

    @property
    def user_messages(self) -> "Locator":
        return self.page.locator("#rapport-widget li.message.user")

    def bot_message(self, containing: str) -> "Locator":
        return self.page.locator("#rapport-widget li.message.bot").filter(has_text=containing)

    def reply_button(self, title: str) -> "Locator":
        return self.page.locator("#rapport-widget .replies button").filter(has_text=title)

    def transcript(self) -> str:
        return self.page.locator("#rapport-widget ol.messages").inner_text()

    def open(self) -> None:
        from playwright.sync_api import expect

        self.launcher.click()
        expect(self.panel).to_be_visible()
        expect(self.input).to_be_focused()

    def send(self, text: str) -> None:
        """Type and send a message, and wait until the bot has answered it (a new bot message)."""
        before = self.bot_messages.count()
        self.input.fill(text)
        self.input.press("Enter")
        self.wait_for_bot_messages(before + 1)

    def wait_for_bot_messages(self, count: int) -> None:
        self.page.wait_for_function(
            """count => {
                const root = document.querySelector('#rapport-widget')?.shadowRoot;
                return !!root && root.querySelectorAll('li.message.bot:not(.typing), li.cards-item').length >= count;
            }""",
            arg=count,
        )

    def session_token(self) -> str:
        return self.page.evaluate("() => window.RapportWidget.sessionId")

    def wait_for_session(self) -> str:
        self.page.wait_for_function("() => !!(window.RapportWidget && window.RapportWidget.sessionId)")
        return self.session_token()

    def store_session_token(self, token: str) -> None:
        """Put a session token where the widget keeps its own (as if copied from another browser)."""
        self.page.evaluate("token => localStorage.setItem(window.RapportWidget.storageKeys.session, token)", token)
