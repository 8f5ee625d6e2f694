"""A local fake of the Instagram Graph API's Send API: records every request and answers like Meta does.

    async with FakeGraphApi() as graph:
        settings INSTAGRAM_API_BASE = graph.base_url      # e.g. http://127.0.0.1:PORT/v21.0
        ...
        graph.requests   -> [RecordedRequest(method, path, headers, json), ...]   every request, failed ones too
        graph.messages   -> the JSON bodies posted to the Send API (failed ones too)
        graph.delivered  -> the JSON bodies the fake accepted (200), in order
        graph.fail_next(2, 503, headers={"Retry-After": "1"})   the next two sends fail like that
        graph.fail_next(1, 400, OUTSIDE_WINDOW_ERROR)            Meta's "outside of allowed window"

From another thread (the end-to-end fakes run on a background loop), read through the loop:
`platform_fakes.call(graph.snapshot())` returns a copy of `delivered`.
"""
from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

from aiohttp import web

API_VERSION = "v21.0"

# Meta's answer to a message sent more than 24 hours after the shopper's last message (Messenger Platform
# error codes: code 10, subcode 2018278).
OUTSIDE_WINDOW_ERROR = {
    "error": {
        "message": "(#10) This message is sent outside of allowed window.",
        "type": "OAuthException",
        "code": 10,
        "error_subcode": 2018278,
        "fbtrace_id": "AbCdEfGhIjK",
    }
}
FAKE_FAILURE = {"error": {"message": "fake failure", "type": "OAuthException", "code": 2, "is_transient": True}}


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


@dataclass(frozen=True)
class PlannedFailure:
    status: int
    body: Dict[str, Any]
    headers: Dict[str, str] = field(default_factory=dict)


class FakeGraphApi:
    def __init__(self, access_token: str = "test-access-token", status: int = 200) -> None:
        self.access_token = access_token
        self.status = status  # set to e.g. 500 to make every send fail
        self.requests: List[RecordedRequest] = []
        self.delivered: List[Dict[str, Any]] = []
        self._failures: Deque[PlannedFailure] = deque()
        self._ids = itertools.count(1)
        self._runner: Optional[web.AppRunner] = None
        self.port: Optional[int] = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{API_VERSION}"

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The JSON bodies posted to the Send API, in order (including the ones the fake failed)."""
        return [r.json for r in self.requests if r.method == "POST" and r.path.endswith("/messages")]

    def fail_next(
        self, count: int, status: int, body: Optional[Dict[str, Any]] = None, headers: Optional[Dict[str, str]] = None
    ) -> None:
        """The next `count` well-formed, authorised sends answer `status` with `body` (default: a transient
        Graph error) and `headers` instead of succeeding."""
        if count < 1 or status < 400:
            raise ValueError("fail_next needs a count of at least 1 and an error status")
        failure = PlannedFailure(status, body if body is not None else FAKE_FAILURE, dict(headers or {}))
        self._failures.extend([failure] * count)

    async def snapshot(self) -> List[Dict[str, Any]]:
        """A copy of `delivered`, for tests on another thread (run it on the fake's loop)."""
        return [json.loads(json.dumps(message)) for message in self.delivered]

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
        try:
            payload = json.loads(body.decode("utf-8"))
            recipient = payload["recipient"]["id"]
            assert isinstance(payload["message"], dict)
        except Exception:  # noqa: BLE001
            return web.json_response({"error": {"message": "Invalid parameter", "code": 100}}, status=400)
        if self._failures:
            failure = self._failures.popleft()
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        if self.status >= 400:
            return web.json_response(FAKE_FAILURE, status=self.status)
        self.delivered.append(payload)
        return web.json_response({"recipient_id": recipient, "message_id": f"aWdfZAG1out{next(self._ids):04d}"})

    async def start(self, port: int = 0) -> "FakeGraphApi":
        """Listen on `port` (a free one by default; the earlier one to come back after stop())."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
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
