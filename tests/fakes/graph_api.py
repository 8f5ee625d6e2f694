"""A local fake of the Instagram Graph API's Send API: records every request and answers like Meta does.

    async with FakeGraphApi() as graph:
        settings INSTAGRAM_API_BASE = graph.base_url      # e.g. http://127.0.0.1:PORT/v21.0
        ...
        graph.requests  -> [RecordedRequest(method, path, headers, json), ...]
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from aiohttp import web

API_VERSION = "v21.0"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class FakeGraphApi:
    def __init__(self, access_token: str = "test-access-token", status: int = 200) -> None:
        self.access_token = access_token
        self.status = status  # set to e.g. 500 to make sends fail
        self.requests: List[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._runner: Optional[web.AppRunner] = None
        self.port: Optional[int] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{API_VERSION}"

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The JSON bodies posted to the Send API, in order."""
        return [r.json for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    async def _any(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return web.json_response(
                {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}, status=401
            )
        if request.method != "POST" or not request.path.endswith("/messages"):
            return web.json_response({"error": {"message": "Unsupported request", "code": 100}}, status=400)
        if self.status >= 400:
            return web.json_response({"error": {"message": "fake failure", "code": 2}}, status=self.status)
        try:
            payload = json.loads(body.decode("utf-8"))
            recipient = payload["recipient"]["id"]
            assert isinstance(payload["message"], dict)
        except Exception:  # noqa: BLE001
            return web.json_response({"error": {"message": "Invalid parameter", "code": 100}}, status=400)
        return web.json_response({"recipient_id": recipient, "message_id": f"aWdfZAG1out{next(self._ids):04d}"})

    async def start(self) -> "FakeGraphApi":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeGraphApi":
        return await self.start()

    async def __aexit__(self, *_: Any) -> None:
        await self.stop()
