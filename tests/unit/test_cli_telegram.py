"""`python -m bot telegram …` against a local fake of the Bot API (TELEGRAM_API_BASE), run on a background
loop because the commands run their own event loop."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Tuple

import pytest

from bot.cli import main
from bot.settings import reset_settings
from channels.telegram.config import SECRET_RULE, TOKEN_REJECTED
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.threaded import ThreadedServers

TOKEN = "123456:cli-test-token_for-the-fake"
SECRET = "cli-webhook-secret_42"
DEFAULT_URL = "https://shop.example/webhooks/telegram/webhook"


@pytest.fixture()
def fakes() -> Iterator[ThreadedServers]:
    servers = ThreadedServers(telegram=FakeTelegramApi(TOKEN)).start()
    yield servers
    servers.stop()


@pytest.fixture()
def api(environment, monkeypatch: pytest.MonkeyPatch, fakes: ThreadedServers) -> FakeTelegramApi:
    fake = fakes.servers["telegram"]
    monkeypatch.setenv("TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TELEGRAM_API_BASE", fake.base_url)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://shop.example/")
    monkeypatch.delenv("TELEGRAM_MODE", raising=False)
    reset_settings()
    return fake


def on_fake(fakes: ThreadedServers, change: Callable[[FakeTelegramApi], Any]) -> None:
    """Change the fake's state on its own loop."""

    async def run() -> None:
        change(fakes.servers["telegram"])

    fakes.call(run())


def run(capsys, *argv: str) -> Tuple[int, str]:
    code = main(["telegram", *argv])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert TOKEN not in output and TOKEN.split(":")[1] not in output and SECRET not in output
    return code, output


def set_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    reset_settings()


def test_set_webhook_registers_the_default_url_with_the_secret_then_info_and_delete(api, fakes, capsys) -> None:
    code, out = run(capsys, "set-webhook")
    assert code == 0, out
    assert f"webhook set: {DEFAULT_URL}" in out and "message, callback_query" in out
    [params] = api.called("setWebhook")
    assert params["url"] == DEFAULT_URL and params["secret_token"] == SECRET
    assert params["allowed_updates"] == ["message", "edited_message", "callback_query", "my_chat_member"] and int(params["max_connections"]) == 40
    assert api.webhook_url == DEFAULT_URL and api.webhook_secret == SECRET

    code, out = run(capsys, "webhook-info")
    assert code == 0
    assert f"webhook: {DEFAULT_URL}" in out and "pending updates: 0" in out and "last error: none" in out
    assert "updates: message, edited_message, callback_query, my_chat_member" in out and "max connections: 40" in out

    def failing(fake: FakeTelegramApi) -> None:
        fake.last_error_message = "Wrong response from the webhook: 503 Service Unavailable"
        fake.last_error_date = 1_790_000_000
        fake.updates.extend([{"update_id": 1}, {"update_id": 2}])

    on_fake(fakes, failing)
    code, out = run(capsys, "webhook-info")
    assert code == 0 and "pending updates: 2" in out
    assert "last error: Wrong response from the webhook: 503 Service Unavailable (at 2026-09-21" in out

    code, out = run(capsys, "delete-webhook")
    assert code == 0 and "webhook deleted" in out
    assert api.webhook_url == "" and len(api.updates) == 2  # pending updates kept
    code, out = run(capsys, "webhook-info")
    assert code == 0 and "webhook: none" in out


def test_set_webhook_with_a_url_of_its_own_and_dropping_pending_updates(api, fakes, capsys) -> None:
    on_fake(fakes, lambda fake: fake.updates.append({"update_id": 7}))
    code, out = run(capsys, "set-webhook", "--url", "https://bots.example:8443/tg/webhooks/telegram/webhook",
                    "--drop-pending-updates", "--max-connections", "10")
    assert code == 0, out
    assert api.webhook_url == "https://bots.example:8443/tg/webhooks/telegram/webhook"
    assert api.updates == [] and "pending updates dropped" in out
    [params] = api.called("setWebhook")
    assert params["drop_pending_updates"] in (True, "true", "True") and int(params["max_connections"]) == 10


def test_delete_webhook_can_drop_pending_updates(api, fakes, capsys) -> None:
    on_fake(fakes, lambda fake: fake.updates.append({"update_id": 7}))
    code, out = run(capsys, "delete-webhook", "--drop-pending-updates")
    assert code == 0 and "pending updates dropped" in out and api.updates == []


def test_an_http_url_is_refused_before_asking_telegram(api, monkeypatch, capsys) -> None:
    set_env(monkeypatch, PUBLIC_BASE_URL=None)  # defaults to http://localhost:WEB_PORT
    code, out = run(capsys, "set-webhook")
    assert code == 1
    assert "only delivers webhooks to https URLs" in out and "http://localhost:8000/webhooks/telegram/webhook" in out
    assert "reverse proxy" in out and "--url" in out and "TELEGRAM_MODE=polling" in out
    assert api.calls == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://shop.example:5005/webhooks/telegram/webhook", "ports 443, 80, 88, 8443"),
        ("shop.example/webhooks/telegram/webhook", "not an absolute http(s) URL"),
        ("ftp://shop.example/hook", "not an absolute http(s) URL"),
        ("https://shop.example:99999/x", "not a valid URL"),
    ],
)
def test_urls_telegram_cannot_deliver_to_are_refused(api, capsys, url: str, message: str) -> None:
    code, out = run(capsys, "set-webhook", "--url", url)
    assert code == 1 and message in out
    assert api.calls == []


def test_allow_http_is_for_local_bot_api_servers_and_telegram_itself_still_refuses(api, fakes, capsys) -> None:
    url = "http://127.0.0.1:5005/webhooks/telegram/webhook"
    code, out = run(capsys, "set-webhook", "--url", url, "--allow-http")
    assert code == 1 and "Telegram refused: Bad webhook: an https url must be provided for webhook" in out
    assert api.webhook_url == ""

    on_fake(fakes, lambda fake: setattr(fake, "accepts_http", True))  # a local Bot API server
    code, out = run(capsys, "set-webhook", "--url", url, "--allow-http")
    assert code == 0 and api.webhook_url == url


@pytest.mark.parametrize("secret", ["has spaces", "semi;colon", "x" * 257, "ünïcode"])
def test_a_secret_telegram_would_refuse_is_refused_by_the_rule(api, monkeypatch, capsys, secret: str) -> None:
    set_env(monkeypatch, TELEGRAM_WEBHOOK_SECRET=secret)
    code, out = run(capsys, "set-webhook")
    assert code == 1 and SECRET_RULE in out and secret not in out
    assert api.calls == []


def test_a_missing_secret_or_token_is_explained(api, monkeypatch, capsys) -> None:
    set_env(monkeypatch, TELEGRAM_WEBHOOK_SECRET=None)
    code, out = run(capsys, "set-webhook")
    assert code == 1 and "TELEGRAM_WEBHOOK_SECRET is not set" in out
    set_env(monkeypatch, TELEGRAM_TOKEN=None)
    for command in ("set-webhook", "webhook-info", "delete-webhook"):
        code, out = run(capsys, command)
        assert code == 1 and "TELEGRAM_TOKEN is not set" in out
    assert api.calls == []


def test_a_rejected_token_is_explained_without_showing_it(api, monkeypatch, capsys) -> None:
    set_env(monkeypatch, TELEGRAM_TOKEN="999:not-the-bots-token")
    for command in ("set-webhook", "webhook-info", "delete-webhook"):
        code, out = run(capsys, command)
        assert code == 1 and TOKEN_REJECTED in out and "not-the-bots-token" not in out
    assert api.called("setWebhook") == []


def test_telegram_unreachable_is_explained(api, monkeypatch, capsys) -> None:
    set_env(monkeypatch, TELEGRAM_API_BASE="http://127.0.0.1:1/bot")
    code, out = run(capsys, "webhook-info")
    assert code == 1 and "cannot reach the Telegram Bot API at http://127.0.0.1:1/bot" in out


def test_telegram_errors_are_passed_on(api, fakes, capsys) -> None:
    on_fake(fakes, lambda fake: fake.fail_once_with_429("setWebhook", retry_after=5))
    code, out = run(capsys, "set-webhook")
    assert code == 1 and "Telegram refused: too many requests; try again in 5 seconds" in out
    on_fake(fakes, lambda fake: fake.fail_next("setWebhook", 500, "Internal Server Error"))
    code, out = run(capsys, "set-webhook")
    assert code == 1 and "Telegram refused: Internal Server Error" in out
    on_fake(fakes, lambda fake: fake.fail_next("deleteWebhook", 403, "Forbidden: bot was blocked"))
    code, out = run(capsys, "delete-webhook")
    assert code == 1 and "Telegram refused: Forbidden: bot was blocked" in out
    assert api.webhook_url == ""


def test_set_webhook_in_polling_mode_is_refused(api, monkeypatch, capsys) -> None:
    set_env(monkeypatch, TELEGRAM_MODE="polling")
    code, out = run(capsys, "set-webhook")
    assert code == 1 and "TELEGRAM_MODE is polling" in out and "TELEGRAM_MODE=webhook" in out
    assert api.calls == []


def test_status(api, monkeypatch, capsys) -> None:
    assert run(capsys, "status") == (0, "telegram: on (webhook)\n")
    set_env(monkeypatch, TELEGRAM_WEBHOOK_SECRET="bad secret")
    assert run(capsys, "status") == (0, f"telegram: off — {SECRET_RULE}\n")
    set_env(monkeypatch, TELEGRAM_MODE="polling")
    assert run(capsys, "status") == (0, "telegram: on (long polling)\n")


def test_max_connections_must_be_1_to_100(api, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["telegram", "set-webhook", "--max-connections", "0"])
    assert exit_.value.code == 2 and "1 to 100" in capsys.readouterr().err
