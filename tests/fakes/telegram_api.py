"""A local fake of the Telegram Bot API (aiohttp) for tests: records every call, answers like Telegram.

Point python-telegram-bot at it with `Bot(token, base_url=fake.base_url)` (or TELEGRAM_API_BASE).

What it emulates beyond recording calls:
- a wrong token is 401 Unauthorized (PTB raises InvalidToken);
- `fail_once_with_429` / `fail_next`: the next call(s) of a method fail with the given error;
- the webhook: setWebhook (https only, unless `accepts_http` like a local Bot API server; the
  secret_token charset is checked), deleteWebhook, getWebhookInfo (url, pending_update_count,
  last_error_message, ...; set `last_error_message` to emulate a failing webhook);
- long polling: `enqueue_update(update)` queues a fixture update; getUpdates answers 409 while a webhook
  is set (as Telegram does), confirms the updates below `offset`, returns the queued ones, and when
  there are none waits up to `poll_wait` seconds (not the requested timeout) and returns [].

The fake's state is only touched on its own event loop: from another thread, go through
`ThreadedServers.call` (tests/fakes/threaded.py); reading a copy (`list(fake.calls)`) is fine.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
NO_HTTPS = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
BAD_SECRET = "Bad Request: secret token contains unallowed characters"
WEBHOOK_ACTIVE = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"


@dataclass
class Call:
    method: str
    params: Dict[str, Any]


@dataclass
class FakeTelegramApi:
    token: str
    calls: List[Call] = field(default_factory=list)
    _fail_next: Dict[str, List[Tuple[int, str, Optional[Dict[str, Any]]]]] = field(default_factory=dict)
    _runner: Optional[web.AppRunner] = None
    port: int = 0
    _message_id: int = 1000
    # The webhook as Telegram keeps it.
    webhook_url: str = ""
    webhook_secret: Optional[str] = None
    webhook_allowed_updates: Optional[List[str]] = None
    webhook_max_connections: int = 40
    last_error_message: Optional[str] = None
    last_error_date: Optional[int] = None
    accepts_http: bool = False  # a local Bot API server (--local) takes http:// webhooks
    # Long polling.
    updates: List[Dict[str, Any]] = field(default_factory=list)
    poll_wait: float = 0.2
    _new_update: Optional[asyncio.Event] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def fail_once_with_429(self, method: str, retry_after: int = 1) -> None:
        self._fail_next.setdefault(method, []).append(
            (429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})
        )

    def fail_next(self, method: str, error_code: int, description: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer {"ok": false, error_code, description}."""
        self._fail_next.setdefault(method, []).extend([(error_code, description, None)] * times)

    def called(self, method: str) -> List[Dict[str, Any]]:
        return [call.params for call in list(self.calls) if call.method == method]

    def enqueue_update(self, update: Dict[str, Any]) -> None:
        """Queue an update for getUpdates (call on the fake's loop)."""
        self.updates.append(update)
        if self._new_update is not None:
            self._new_update.set()

    async def start(self) -> "FakeTelegramApi":
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._new_update is not None:  # long polls in flight answer now rather than linger
            self._new_update.set()
            await asyncio.sleep(0.01)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(Call(method, params))
        failures = self._fail_next.get(method)
        if failures:
            code, description, parameters = failures.pop(0)
            return _error(code, description, parameters)
        if method == "setWebhook":
            return self._set_webhook(params)
        if method == "getUpdates":
            return await self._get_updates(params)
        return web.json_response({"ok": True, "result": self._result(method, params)})

    def _set_webhook(self, params: Dict[str, Any]) -> web.Response:
        url = str(params.get("url") or "")
        if url and not (url.startswith("https://") or (self.accepts_http and url.startswith("http://"))):
            return _error(400, NO_HTTPS)
        secret = params.get("secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(str(secret)):
            return _error(400, BAD_SECRET)
        if _flag(params.get("drop_pending_updates")):
            self.updates.clear()
        self.webhook_url = url
        self.webhook_secret = None if secret is None else str(secret)
        allowed = params.get("allowed_updates")
        self.webhook_allowed_updates = list(allowed) if isinstance(allowed, list) else None
        self.webhook_max_connections = int(params.get("max_connections") or 40)
        description = "Webhook was set" if url else "Webhook was deleted"
        return web.json_response({"ok": True, "result": True, "description": description})

    async def _get_updates(self, params: Dict[str, Any]) -> web.Response:
        if self.webhook_url:
            return _error(409, WEBHOOK_ACTIVE)
        offset = int(params["offset"]) if params.get("offset") not in (None, "") else None
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if offset is not None:  # confirms every update below the offset
            self.updates = [update for update in self.updates if update["update_id"] >= offset]
        if not self.updates and timeout > 0:
            self._new_update = self._new_update or asyncio.Event()
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), min(timeout, self.poll_wait))
            except asyncio.TimeoutError:
                pass
        return web.json_response({"ok": True, "result": self.updates[:limit]})

    def _result(self, method: str, params: Dict[str, Any]) -> Any:
        canned = json.loads((FIXTURES / "fake_api_responses.json").read_text())
        if method == "getMe":
            return canned["getMe"]["result"]
        if method in ("sendMessage", "sendPhoto"):
            self._message_id += 1
            result: Dict[str, Any] = {
                "message_id": self._message_id,
                "date": 1700000000,
                "chat": {"id": int(params.get("chat_id", 0)), "type": "private"},
            }
            if method == "sendMessage":
                result["text"] = params.get("text", "")
            else:
                result["photo"] = [{"file_id": "AgACAgIAAxkBAAIC", "file_unique_id": "AQADx", "width": 800, "height": 800}]
                if params.get("caption"):
                    result["caption"] = params["caption"]
            return result
        if method == "deleteWebhook":
            self.webhook_url = ""
            self.webhook_secret = None
            if _flag(params.get("drop_pending_updates")):
                self.updates.clear()
            return True
        if method == "getWebhookInfo":
            info: Dict[str, Any] = {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self.updates),
            }
            if self.webhook_url:
                info["max_connections"] = self.webhook_max_connections
                info["ip_address"] = "127.0.0.1"
                if self.webhook_allowed_updates is not None:
                    info["allowed_updates"] = self.webhook_allowed_updates
            if self.last_error_message:
                info["last_error_message"] = self.last_error_message
                info["last_error_date"] = self.last_error_date or int(time.time())
            return info
        return True  # answerCallbackQuery, ...


def _error(code: int, description: str, parameters: Optional[Dict[str, Any]] = None) -> web.Response:
    body: Dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


async def _params(request: web.Request) -> Dict[str, Any]:
    """PTB posts form fields whose complex values are JSON strings; decode those."""
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    params: Dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params
