"""Health and readiness of a Rasa server, as an input channel (Rasa has no route of its own for it
while its HTTP API is off): GET /webhooks/health/ answers 200 while the process serves;
GET /webhooks/health/ready answers 200 once the model is loaded (503 before), without any I/O: what the
load balancer checks every second, which must stay fast on a busy replica. With ?dependencies=1 it also
reports whether the tracker store and the lock store answer. Those two are shared by every replica: while
one is down, taking every replica out of the load balancer would only turn the replicas' own waiting (they
retry PostgreSQL for 15 s and Redis for 8 s) into refusals, so a dependency never fails readiness."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, Optional, Text

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

CHECK_TIMEOUT_SECONDS = 2.0


async def _tracker_store_ready(store: Any) -> None:
    engine = getattr(store, "engine", None)
    if engine is not None:
        def ping() -> None:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")

        await asyncio.get_running_loop().run_in_executor(None, ping)
        return
    red = getattr(store, "red", None)  # Rasa's RedisTrackerStore
    if red is not None:
        await asyncio.get_running_loop().run_in_executor(None, red.ping)


async def _lock_store_ready(store: Any) -> None:
    client = getattr(store, "client", None)  # bot.locks.RedisTicketLockStore
    if client is not None and hasattr(client, "ping"):
        await client.ping()


async def readiness(agent: Any, dependencies: bool = True) -> Dict[str, str]:
    """Each part's state: "ok" or why not."""
    parts: Dict[str, str] = {}
    if agent is None or not agent.is_ready():
        return {"model": "not loaded"}
    parts["model"] = "ok"
    if not dependencies:
        return parts
    checks: Dict[str, Callable[[], Awaitable[None]]] = {
        "tracker_store": lambda: _tracker_store_ready(getattr(agent.tracker_store, "_tracker_store", agent.tracker_store)),
        "lock_store": lambda: _lock_store_ready(agent.lock_store),
    }
    for name, check in checks.items():
        try:
            await asyncio.wait_for(asyncio.ensure_future(check()), CHECK_TIMEOUT_SECONDS)
            parts[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised: this is the health check
            parts[name] = f"unavailable ({type(error).__name__})"
    return parts


class HealthInput(InputChannel):
    """/webhooks/health/ (liveness) and /webhooks/health/ready (readiness); no messages."""

    @classmethod
    def name(cls) -> Text:
        return "health"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> "HealthInput":
        return cls()

    def blueprint(self, on_new_message: Callable[..., Awaitable[Any]]) -> Blueprint:
        blueprint = Blueprint("health_webhook", __name__)

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/ready", methods=["GET"])
        async def ready(request: Request) -> HTTPResponse:
            parts = await readiness(getattr(request.app.ctx, "agent", None),
                                    dependencies=request.args.get("dependencies") == "1")
            if parts.get("model") != "ok":
                return response.json({"status": "unavailable", **parts}, status=503)
            degraded = any(state != "ok" for state in parts.values())
            return response.json({"status": "degraded" if degraded else "ready", **parts})

        return blueprint
