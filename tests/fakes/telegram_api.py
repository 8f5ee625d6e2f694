"""A local fake of the Telegram Bot API (aiohttp) for tests: records every call, can answer 429 once.

Point python-telegram-bot at it with `Bot(token, base_url=fake.base_url)` (or TELEGRAM_API_BASE).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"


@dataclass
class Call:
    method: str
    params: Dict[str, Any]


@dataclass
class FakeTelegramApi:
    token: str
    calls: List[Call] = field(default_factory=list)
    _fail_next: Dict[str, int] = field(default_factory=dict)
    _runner: Optional[web.AppRunner] = None
    port: int = 0
    _message_id: int = 1000

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def fail_once_with_429(self, method: str, retry_after: int = 1) -> None:
        self._fail_next[method] = retry_after

    def called(self, method: str) -> List[Dict[str, Any]]:
        return [call.params for call in self.calls if call.method == method]

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
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append(Call(method, params))
        retry_after = self._fail_next.pop(method, None)
        if retry_after is not None:
            error = dict(json.loads((FIXTURES / "fake_api_responses.json").read_text())["error_429"])
            error["parameters"] = {"retry_after": retry_after}
            error["description"] = f"Too Many Requests: retry after {retry_after}"
            return web.json_response(error, status=429)
        return web.json_response({"ok": True, "result": self._result(method, params)})

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
            return result
        return True  # answerCallbackQuery, deleteWebhook, setWebhook, ...


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
