"""`python -m bot telegram set-webhook|webhook-info|delete-webhook|status`: the bot's registration with Telegram.

Telegram delivers a bot's updates to one https URL, registered with setWebhook together with the secret
it sends back in every request (`X-Telegram-Bot-Api-Secret-Token`, TELEGRAM_WEBHOOK_SECRET). The Rasa
server serves the webhook at /webhooks/telegram/webhook on RASA_PORT. The default URL is PUBLIC_BASE_URL
+ that path: it assumes a reverse proxy on the public address that routes /webhooks/ to the Rasa server
(PUBLIC_BASE_URL is also the web app's address). Otherwise pass `--url`.

Telegram only delivers to https URLs on ports 443, 80, 88 or 8443; `--allow-http` lifts both rules for a
local Bot API server (TELEGRAM_API_BASE) that accepts plain http. Without a public URL, use long polling
instead (TELEGRAM_MODE=polling): the Rasa server then deletes the webhook and fetches updates itself.

Every command exits 1 with a clear message when the token is unset or rejected, Telegram cannot be
reached, or Telegram refuses the request. The token and the secret are never printed.
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

from bot.cli.loyalty import CommandError
from bot.settings import Settings, get_settings

T = TypeVar("T")

WEBHOOK_PORTS = (443, 80, 88, 8443)
DEFAULT_MAX_CONNECTIONS = 40


def default_webhook_url(settings: Settings) -> str:
    from channels.telegram.config import WEBHOOK_PATH

    return f"{settings.public_base_url}{WEBHOOK_PATH}"


def check_webhook_url(url: str, allow_http: bool = False) -> str:
    """`url` if Telegram can deliver to it, else a CommandError saying what to change."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CommandError(f"{url!r} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CommandError(f"{url!r} is not an absolute http(s) URL, e.g. https://shop.example/webhooks/telegram/webhook")
    if allow_http:
        return url
    if parts.scheme != "https":
        raise CommandError(
            f"Telegram only delivers webhooks to https URLs, and {url} is not one. Set PUBLIC_BASE_URL to your "
            "public https address (a reverse proxy there must route /webhooks/ to the Rasa server on RASA_PORT) "
            "or pass --url https://…; --allow-http is only for a local Bot API server (TELEGRAM_API_BASE). "
            "Without a public URL, use long polling: TELEGRAM_MODE=polling"
        )
    if (port or 443) not in WEBHOOK_PORTS:
        raise CommandError(
            f"Telegram only delivers webhooks to ports {', '.join(map(str, WEBHOOK_PORTS))}, not {port}: "
            "put the Rasa server behind a reverse proxy on one of them"
        )
    return url


def _token(settings: Settings) -> str:
    if not settings.telegram_token:
        raise CommandError("TELEGRAM_TOKEN is not set: put the token @BotFather gave you in the environment")
    return settings.telegram_token


def _with_bot(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(bot)` with an initialised telegram.Bot; Telegram's refusals become CommandError."""
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut

    from channels.telegram.config import TOKEN_REJECTED
    from channels.telegram.outbound import retry_seconds

    token = _token(settings)

    async def run() -> T:
        async with Bot(token, base_url=settings.telegram_api_base) as bot:  # getMe checks the token
            return await work(bot)

    try:
        return asyncio.run(run())
    except InvalidToken:  # PTB's own message quotes the token
        raise CommandError(TOKEN_REJECTED) from None
    except RetryAfter as error:
        raise CommandError(f"Telegram refused: too many requests; try again in {retry_seconds(error):g} seconds") from None
    except NetworkError as error:
        # PTB raises NetworkError both when nothing answers (httpx errors, timeouts) and for HTTP errors
        # it has no class for (5xx, 429 without retry_after); BadRequest is a subclass too.
        if isinstance(error, TimedOut) or error.message.startswith("httpx."):
            raise CommandError(
                f"cannot reach the Telegram Bot API at {settings.telegram_api_base} ({error.message}); try again later"
            ) from None
        raise CommandError(f"Telegram refused: {error.message}") from None
    except TelegramError as error:
        raise CommandError(f"Telegram refused: {error.message}") from None


def _set_webhook(args: argparse.Namespace) -> int:
    from channels.telegram.config import ALLOWED_UPDATES, MISSING_WEBHOOK_SETTINGS, SECRET_RULE, valid_webhook_secret

    settings = get_settings()
    _token(settings)
    if settings.telegram_mode == "polling":
        raise CommandError(
            "TELEGRAM_MODE is polling: the Rasa server fetches updates itself and deletes any webhook when it "
            "starts (Telegram refuses getUpdates while a webhook is set). Set TELEGRAM_MODE=webhook first"
        )
    secret = settings.telegram_webhook_secret
    if not secret:
        raise CommandError(
            f"TELEGRAM_WEBHOOK_SECRET is not set ({MISSING_WEBHOOK_SETTINGS}): Telegram sends it with every "
            "update and the channel refuses updates without it"
        )
    if not valid_webhook_secret(secret):
        raise CommandError(SECRET_RULE)
    url = check_webhook_url(args.url or default_webhook_url(settings), args.allow_http)

    async def work(bot: Any) -> bool:
        return await bot.set_webhook(
            url,
            secret_token=secret,
            allowed_updates=list(ALLOWED_UPDATES),
            max_connections=args.max_connections,
            drop_pending_updates=args.drop_pending_updates,
        )

    if not _with_bot(settings, work):
        raise CommandError("Telegram did not confirm the webhook; check it with `.venv/bin/python -m bot telegram webhook-info`")
    print(f"[telegram] webhook set: {url}")
    pending = "dropped" if args.drop_pending_updates else "kept"
    print(
        f"[telegram] updates: {', '.join(ALLOWED_UPDATES)}; at most {args.max_connections} connections; "
        f"pending updates {pending}"
    )
    return 0


def _webhook_info(_: argparse.Namespace) -> int:
    settings = get_settings()

    async def work(bot: Any) -> Any:
        return await bot.get_webhook_info()

    info = _with_bot(settings, work)
    if info.url:
        print(f"[telegram] webhook: {info.url}")
    else:
        print("[telegram] webhook: none (updates wait for getUpdates: long polling, or `telegram set-webhook`)")
    print(f"[telegram] pending updates: {info.pending_update_count}")
    if info.last_error_message:
        when = f" (at {info.last_error_date:%Y-%m-%d %H:%M:%S %Z})" if info.last_error_date else ""
        print(f"[telegram] last error: {info.last_error_message}{when}")
    else:
        print("[telegram] last error: none")
    if info.url:
        if info.allowed_updates:
            print(f"[telegram] updates: {', '.join(info.allowed_updates)}")
        if info.max_connections:
            print(f"[telegram] max connections: {info.max_connections}")
    return 0


def _delete_webhook(args: argparse.Namespace) -> int:
    settings = get_settings()

    async def work(bot: Any) -> bool:
        return await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)

    _with_bot(settings, work)
    dropped = " and its pending updates dropped" if args.drop_pending_updates else ""
    print(f"[telegram] webhook deleted{dropped}")
    return 0


def _status(_: argparse.Namespace) -> int:
    from channels.telegram.config import telegram_status

    print(telegram_status(get_settings()))
    return 0


def add_telegram_commands(commands: Any) -> None:
    telegram = commands.add_parser("telegram", help="the Telegram bot's webhook").add_subparsers(
        dest="telegram_command", required=True
    )
    set_webhook = telegram.add_parser(
        "set-webhook",
        help="register the webhook with Telegram (with TELEGRAM_WEBHOOK_SECRET)",
        description="Default URL: PUBLIC_BASE_URL/webhooks/telegram/webhook — a reverse proxy there must route "
        "/webhooks/ to the Rasa server (RASA_PORT); or pass --url.",
    )
    set_webhook.add_argument("--url", help="the public https URL of /webhooks/telegram/webhook")
    set_webhook.add_argument("--drop-pending-updates", action="store_true", help="discard updates Telegram holds")
    set_webhook.add_argument(
        "--allow-http", action="store_true", help="allow http:// and any port (local Bot API servers only)"
    )
    set_webhook.add_argument(
        "--max-connections", type=_connections, default=DEFAULT_MAX_CONNECTIONS,
        help=f"simultaneous deliveries, 1-100 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    set_webhook.set_defaults(handler=_set_webhook)
    telegram.add_parser("webhook-info", help="the webhook Telegram has: URL, pending updates, last error").set_defaults(
        handler=_webhook_info
    )
    delete = telegram.add_parser("delete-webhook", help="remove the webhook (updates then wait for long polling)")
    delete.add_argument("--drop-pending-updates", action="store_true", help="discard updates Telegram holds")
    delete.set_defaults(handler=_delete_webhook)
    telegram.add_parser("status", help="whether the channel is on, and what to set if not").set_defaults(handler=_status)


def _connections(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: max connections is a whole number from 1 to 100")
    return int(text)
