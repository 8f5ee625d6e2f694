"""Stores that already embed the rasa-webchat 1.0.1 widget (npm) work against our widget channel: its
bundle (fetched and integrity-checked by scripts/setup.sh) on a page of its own, pointed at the real Rasa
server's /socket.io, in headless Chromium."""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator

import pytest

from bot.processes import ManagedProcess
from channels.widget.config import RASA_WEBCHAT_BUNDLE
from channels.widget.sessions import conversation_of, verify_session
from tests.browser import chromium, new_page, require_chromium, screenshot
from tests.e2e.conftest import E2E_SECRETS

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A store on rasa-webchat</title></head>
<body>
<h1>A store that embeds rasa-webchat 1.0.1</h1>
<script src="/rasa-webchat.js"></script>
<script>
  WebChat.default({
    socketUrl: "http://127.0.0.1:%(rasa_port)s",
    socketPath: "/socket.io/",
    title: "Oak & Ember",
    customData: {language: "en"},
    params: {storage: "local"},
    customMessageDelay: function () { return 0; }
  }, null);
</script>
</body></html>
"""


def _require_bundle() -> None:
    if RASA_WEBCHAT_BUNDLE.is_file():
        return
    message = f"{RASA_WEBCHAT_BUNDLE} is missing: run scripts/setup.sh (it fetches rasa-webchat 1.0.1)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def store_page(rasa_server: ManagedProcess, e2e_env: Dict[str, str]) -> Iterator[str]:
    """A store page with rasa-webchat, served from its own origin (as a store would)."""
    require_chromium()
    _require_bundle()
    page = (PAGE % {"rasa_port": e2e_env["RASA_PORT"]}).encode()
    bundle = RASA_WEBCHAT_BUNDLE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body, kind = {"/": (page, "text/html"), "/rasa-webchat.js": (bundle, "application/javascript")}.get(
                self.path, (b"not found", "text/plain"))
            self.send_response(200 if body != b"not found" else 404)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _stored_session(page: object) -> str:
    stored = page.evaluate("() => localStorage.getItem('chat_session')")  # type: ignore[attr-defined]
    return json.loads(stored)["session_id"]


def _confirmation(message: object) -> bool:
    # rasa-webchat logs "session_confirm:<socket id> session_id:<id>" for each session_confirm.
    return message.text.startswith("session_confirm:")  # type: ignore[attr-defined]


def _confirmed_id(message: object) -> str:
    return message.text.split(" session_id:", 1)[1]  # type: ignore[attr-defined]


def test_rasa_webchat_chats_and_keeps_its_signed_session_across_a_reload(store_page: str) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = new_page(browser)
        with page.expect_console_message(_confirmation) as first:
            page.goto(store_page)
        token = _confirmed_id(first.value)
        # Issued by the server and signed (a guest session of a client without a device key).
        assert verify_session(E2E_SECRETS["WIDGET_SIGNING_SECRET"], token) == conversation_of(token)

        page.locator(".rw-launcher").click()
        page.locator(".rw-new-message").fill("hi")
        page.locator(".rw-new-message").press("Enter")
        how_to_earn = page.locator(".rw-reply").filter(has_text="How to earn")
        expect(how_to_earn).to_be_visible()
        how_to_earn.click()
        expect(page.locator(".rw-response").filter(has_text="points for every")).to_be_visible()
        screenshot(page, "rasa-webchat")
        assert _stored_session(page) == token

        with page.expect_console_message(_confirmation) as again:
            page.reload()
        assert _confirmed_id(again.value) == token  # the same session, confirmed by the server again
        assert _stored_session(page) == token
        assert page.js_errors == []  # type: ignore[attr-defined]
