"""The scaled-out layout's parts on their own: the jobs lease on a real Redis, the apology and the lighter
payload of action calls against a real (dead or failing) HTTP endpoint, the HAProxy configuration as
HAProxy itself reads it, and the TCP proxy `make chaos` cuts PostgreSQL with."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.cluster.runner import haproxy_config, server_states, stats_socket_path
from bot.cluster.tcp_proxy import TcpProxy
from bot.leases import RedisLease
from bot.processes import free_port
from bot.rasa_hooks import APOLOGY, install_action_hooks, slim_tracker_state
from tests.services import REDIS_URL, require_service

DOMAIN = Domain.from_dict({"intents": ["greet"], "actions": ["action_points"]})


async def test_one_jobs_lease_holder_and_a_takeover_when_it_stops_renewing() -> None:
    require_service("Redis", 6379)
    name = f"test-{uuid.uuid4().hex[:8]}"
    first, second = RedisLease(REDIS_URL, name, ttl_seconds=0.5), RedisLease(REDIS_URL, name, ttl_seconds=0.5)
    assert await first.refresh() is True
    assert await second.refresh() is False
    assert await first.refresh() is True  # renews its own
    await asyncio.sleep(0.7)  # the holder died: no renewal for a whole TTL
    assert await second.refresh() is True
    assert await first.refresh() is False  # it never takes back a lease another one holds
    await first.release()
    assert await second.refresh() is True  # releasing a lease one does not hold leaves it alone
    await second.release()


def _tracker() -> DialogueStateTracker:
    tracker = DialogueStateTracker("shopper", DOMAIN.slots)
    for text in ("hello", "how many points"):
        tracker.update(UserUttered(text, {"name": "greet", "confidence": 0.9,
                                          "intent_ranking": [{"name": "greet", "confidence": 0.9}] * 10},
                                   entities=[{"entity": "x", "value": "y", "start": 0, "end": 1, "extractor": "DIET",
                                              "confidence_entity": 0.9}]))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


def test_the_action_payload_keeps_the_latest_message_whole_and_the_older_ones_short() -> None:
    from rasa.shared.core.trackers import EventVerbosity

    state = _tracker().current_state(EventVerbosity.ALL)
    slim = slim_tracker_state(state)
    users = [event for event in slim["events"] if event["event"] == "user"]
    assert users[-1] == [event for event in state["events"] if event["event"] == "user"][-1]
    assert users[0]["text"] == "hello" and users[0]["parse_data"]["intent"]["name"] == "greet"
    assert "intent_ranking" not in users[0]["parse_data"]
    assert users[0]["parse_data"]["entities"] == [{"entity": "x", "value": "y", "start": 0, "end": 1}]
    assert slim["latest_message"] == state["latest_message"]


async def _run_remote(url: str) -> list:
    install_action_hooks()
    action = RemoteAction("action_points", EndpointConfig(url))
    output = CollectingOutputChannel()
    return await action.run(output, TemplatedNaturalLanguageGenerator({}), _tracker(), DOMAIN)


async def test_an_action_server_that_is_down_gets_the_shopper_an_apology() -> None:
    events = await _run_remote(f"http://127.0.0.1:{free_port()}/webhook")
    assert len(events) == 1 and isinstance(events[0], BotUttered) and events[0].text == APOLOGY


async def test_a_5xx_or_a_timeout_gets_an_apology_and_a_rejection_stays_a_rejection(monkeypatch) -> None:
    async def failing(request: web.Request) -> web.Response:
        body = await request.json()
        if body["tracker"]["sender_id"] == "shopper" and request.query.get("mode") == "reject":
            return web.json_response({"action_name": "action_points", "error": "no"}, status=400)
        if request.query.get("mode") == "slow":
            await asyncio.sleep(3)
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_post("/webhook", failing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    monkeypatch.setattr("bot.rasa_hooks.action_timeout_seconds", lambda: 1.0)
    try:
        assert (await _run_remote(f"http://127.0.0.1:{port}/webhook"))[0].text == APOLOGY
        assert (await _run_remote(f"http://127.0.0.1:{port}/webhook?mode=slow"))[0].text == APOLOGY
        with pytest.raises(ActionExecutionRejection):
            await _run_remote(f"http://127.0.0.1:{port}/webhook?mode=reject")
    finally:
        await runner.cleanup()


def test_haproxy_accepts_the_generated_configuration(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (scripts/setup.sh installs it)")
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config("127.0.0.1", 15005, 15055, 18000, [15101, 15102], [15151], [18101, 18102],
                                     tmp_path / "haproxy.sock"))
    result = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert text.count("server rasa1 127.0.0.1:15101 check") == 2  # the REST and the socket.io backends
    assert "server actions1 127.0.0.1:15151 check" in text and "server web2 127.0.0.1:18102 check" in text


def test_the_stats_socket_tells_which_servers_the_checks_let_in(tmp_path: Path) -> None:
    """HAProxy started on the generated configuration: the one replica that answers its ready URL is UP, the
    others (nothing listening) DOWN, as the cluster's tests read it instead of sleeping."""
    import http.server
    import threading

    haproxy = shutil.which("haproxy")
    if haproxy is None:  # CI must run it: setup installs HAProxy
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("haproxy is not installed (scripts/setup.sh installs it)")

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/webhooks/health/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    replica = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=replica.serve_forever, daemon=True).start()
    dead = free_port()
    socket_path = stats_socket_path(tmp_path)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config("127.0.0.1", free_port(), free_port(), free_port(),
                                     [replica.server_address[1], dead], [free_port()], [free_port()], socket_path))
    process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        states = server_states(socket_path)
        wanted = {("rasa", "rasa1"): "UP", ("rasa_socket_io", "rasa1"): "UP", ("rasa", "rasa2"): "DOWN"}
        while any(states.get(key) != state for key, state in wanted.items()) and time.monotonic() < deadline:
            time.sleep(0.2)  # servers start UP; the dead one is DOWN after three failed checks
            states = server_states(socket_path)
        assert all(states.get(key) == state for key, state in wanted.items()), states
    finally:
        process.terminate()
        process.wait(timeout=10)
        replica.shutdown()
    assert server_states(socket_path) == {}  # HAProxy gone: nothing to report, no error


def test_a_long_work_directory_still_gets_a_stats_socket_a_unix_address_can_hold(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    path = stats_socket_path(deep)
    assert len(str(path)) < 100 and path.name == "haproxy.sock"
    assert stats_socket_path(tmp_path) == tmp_path / "haproxy.sock"


def test_the_tcp_proxy_forwards_and_refuses_during_an_outage() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        target = server.getsockname()[1]
        proxy = TcpProxy(free_port(), "127.0.0.1", target).start()
        try:
            client = socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=5)
            accepted, _ = server.accept()
            client.sendall(b"ping")
            assert accepted.recv(4) == b"ping"
            proxy.outage(1.0)
            deadline = 50
            while deadline and not proxy.refusing:
                deadline -= 1
                time.sleep(0.02)
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=1).close()
            assert client.recv(4) == b""  # the open connection was cut
            client.close()
            accepted.close()
            time.sleep(1.3)
            socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=5).close()  # back
        finally:
            proxy.stop()
