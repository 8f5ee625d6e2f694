"""Environment → typed settings. The one place that reads os.environ for the project."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_MINUTES_PER_WEEK = 7 * 24 * 60


class SettingsError(ValueError):
    """An environment variable holds a value the project cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1, maximum: int = 1 << 31) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def _optional(env: Mapping[str, str], name: str) -> Optional[str]:
    raw = env.get(name, "").strip()
    return raw or None


def _choice(env: Mapping[str, str], name: str, choices: Sequence[str]) -> str:
    """One of `choices` (the first is the default), or a SettingsError naming the variable."""
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def _origins(env: Mapping[str, str], name: str) -> Tuple[str, ...]:
    """A comma-separated list of web origins (scheme://host[:port]); unset, empty or "*" = any: ()."""
    origins = [raw.strip().rstrip("/") for raw in (env.get(name) or "").split(",") if raw.strip()]
    if "*" in origins:
        return ()
    for origin in origins:
        scheme, _, host = origin.partition("://")
        if scheme not in ("http", "https") or not host or "/" in host:
            raise SettingsError(f"{name}: {origin!r} is not an origin like https://shop.example")
    return tuple(origins)


def _shop_secrets(env: Mapping[str, str], name: str) -> Tuple[Tuple[str, str], ...]:
    """A comma-separated list of shop-domain=secret pairs; the domains in lower case."""
    pairs = []
    for entry in (env.get(name) or "").split(","):
        if not entry.strip():
            continue
        shop, separator, secret = entry.partition("=")
        shop, secret = shop.strip().lower(), secret.strip()
        if not separator or not shop or not secret or "/" in shop or " " in shop:
            # Never the entry itself: it may hold a secret.
            raise SettingsError(f"{name}: each entry is shop-domain=secret (shop-a.myshopify.com=…); "
                                f"the entry for {shop[:60]!r} is not")
        pairs.append((shop, secret))
    if len({shop for shop, _ in pairs}) != len(pairs):
        raise SettingsError(f"{name}: a shop is listed twice")
    return tuple(pairs)


# More proxies than this in front of one app is a typo, not a deployment.
MAX_PROXY_HOPS = 10


def _trusted_proxy_hops(env: Mapping[str, str]) -> int:
    # TRUST_FORWARDED_FOR (true = the FIRST X-Forwarded-For entry, which the client writes) was replaced:
    # ignoring it silently would count every visitor as the proxy's address.
    if (_optional(env, "TRUST_FORWARDED_FOR") or "false").lower() != "false":
        raise SettingsError("TRUST_FORWARDED_FOR was replaced by TRUSTED_PROXY_HOPS: set the number of proxies "
                            "in front of the web app (0 = none) and unset TRUST_FORWARDED_FOR")
    return _int(env, "TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=MAX_PROXY_HOPS)


def _tracker_store(env: Mapping[str, str]) -> str:
    if _optional(env, "TRACKER_STORE") is None:
        redis_only = _optional(env, "REDIS_URL") and not _optional(env, "TRACKER_DATABASE_URL")
        return "redis" if redis_only else "sql"
    choice = _choice(env, "TRACKER_STORE", ("sql", "redis"))
    if choice == "redis" and not _optional(env, "REDIS_URL"):
        raise SettingsError("TRACKER_STORE=redis needs REDIS_URL")
    return choice


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    # URLs may carry passwords: kept out of repr (and so out of logs and tracebacks).
    database_url: str = field(repr=False)
    tracker_database_url: str = field(repr=False)
    redis_url: Optional[str] = field(repr=False)
    rasa_port: int
    actions_port: int
    web_port: int
    bind_host: str
    program_file: Path
    shop_file: Path
    max_message_chars: int
    max_body_bytes: int
    log_level: str
    log_format: str
    rest_channel_token: Optional[str] = field(repr=False, default=None)
    # The store API's bearer token; unset, the API answers 503 (off) rather than run unauthenticated.
    store_api_token: Optional[str] = field(repr=False, default=None)
    # Where shoppers and the store reach the web app from outside (links, webhooks); from_env defaults
    # it to http://localhost:WEB_PORT.
    public_base_url: str = ""
    # Instagram channel (channels/instagram.py): app secret (X-Hub-Signature-256), the webhook verify token
    # and the Graph API access token; unset, the channel answers 503 and processes nothing.
    # INSTAGRAM_API_BASE points the sender at another Graph API (tests).
    instagram_app_secret: Optional[str] = field(repr=False, default=None)
    instagram_verify_token: Optional[str] = field(repr=False, default=None)
    instagram_access_token: Optional[str] = field(repr=False, default=None)
    instagram_api_base: str = "https://graph.instagram.com/v21.0"
    # How often the web app runs tier reviews and points expiry; 0 turns the scheduled jobs off.
    loyalty_jobs_interval_minutes: int = 60
    # How often (hours) the web app refits the repeat-purchase prediction and stores every customer's score
    # (bot/prediction/); 0 turns the scheduled refit off (`python -m bot predict refit` from cron instead).
    prediction_refit_hours: int = 24
    # Telegram channel: the bot token and the webhook secret (setWebhook's secret_token); unset, the
    # channel answers 503 and processes nothing. TELEGRAM_API_BASE points PTB at another Bot API server
    # (tests, self-hosted servers); PTB appends the token to it.
    telegram_token: Optional[str] = field(repr=False, default=None)
    telegram_webhook_secret: Optional[str] = field(repr=False, default=None)
    telegram_api_base: str = "https://api.telegram.org/bot"
    # "webhook" (Telegram posts updates to /webhooks/telegram/webhook) or "polling" (the Rasa server asks
    # Telegram for updates itself: local development without a public URL).
    telegram_mode: str = "webhook"
    # How often (seconds) the Telegram channel pushes queued chat notices (a review approved, a referral
    # rewarded, …) to shoppers linked on Telegram; 0 turns that off (they are still told in the chat).
    notice_delivery_seconds: int = 30
    # Agents (not only owners) may credit and debit points in the console.
    agents_may_adjust_points: bool = False
    # Website widget (channels/widget.py): signs the session ids it issues and checks the store's customer
    # tokens (HMAC-SHA256 of the store's customer id with this secret); unset, the widget is off.
    widget_signing_secret: Optional[str] = field(repr=False, default=None)
    # Sites allowed to open the widget's socket (WIDGET_ALLOWED_ORIGINS: comma-separated origins such as
    # https://shop.example); empty = any site. The signed session is the authentication, not the origin:
    # this only narrows which pages may embed the widget.
    widget_allowed_origins: Tuple[str, ...] = ()
    # "development" or "production" (RAPPORT_ENV). Production starts Rasa with credentials.production.yml,
    # which has no REST channel: its `sender` field is not signed, so it is for development and tests.
    environment: str = "development"
    # Product quizzes (QUIZZES_DIR): every *.yml in it is a quiz (bot/quiz/definition.py).
    quizzes_dir: Path = PROJECT_ROOT / "data" / "quizzes"
    # Keys the hashes of shipping addresses and IP addresses kept for the referral fraud rules
    # (bot/advocacy/fingerprints.py); unset, a random key is made once in <data_dir>/fingerprint.key.
    fingerprint_secret: Optional[str] = field(repr=False, default=None)
    # How many reverse proxies in front of the web app append the address they were reached from to
    # X-Forwarded-For (TRUSTED_PROXY_HOPS). 0: the visitor is the connection's address. N: the Nth entry from
    # the right, the one our outermost proxy wrote; entries left of it are whatever the client sent.
    trusted_proxy_hops: int = 0
    # Where Rasa keeps conversations (TRACKER_STORE): "sql" (TRACKER_DATABASE_URL: SQLite or PostgreSQL,
    # append-only and fenced, the scaled-out layout's choice) or "redis" (Rasa's RedisTrackerStore on
    # REDIS_URL). Unset: "redis" when REDIS_URL is set and TRACKER_DATABASE_URL is not, else "sql".
    tracker_store: str = "sql"
    # How long a conversation lock's lease lasts without renewal (LOCK_LEASE_SECONDS): how long a
    # conversation waits after the replica serving it died (bot/locks.py).
    lock_lease_seconds: int = 10
    # How long the Rasa server waits for the action server before the shopper gets an apology
    # (ACTION_TIMEOUT_SECONDS; Rasa's own wait is 5 minutes). bot/rasa_hooks.py.
    action_timeout_seconds: int = 15
    # Shopify webhooks (POST /webhooks/shopify): each shop's app client secret, by the shop's domain
    # (SHOPIFY_WEBHOOK_SECRETS=shop-a.myshopify.com=secret,shop-b.myshopify.com=secret). A delivery from a
    # shop not listed is refused (401); with none listed the endpoint refuses every delivery.
    shopify_webhook_secrets: Tuple[Tuple[str, str], ...] = field(repr=False, default=())
    # WooCommerce webhooks (POST /webhooks/woocommerce): the secret set on the store's webhooks
    # (X-WC-Webhook-Signature); unset, every delivery is refused.
    woocommerce_webhook_secret: Optional[str] = field(repr=False, default=None)

    def shopify_secret(self, shop_domain: str) -> Optional[str]:
        """The client secret of this shop (its myshopify.com domain, any case), or None."""
        wanted = (shop_domain or "").strip().lower()
        return next((secret for shop, secret in self.shopify_webhook_secrets if shop == wanted), None)

    @property
    def action_endpoint_url(self) -> str:
        return f"http://localhost:{self.actions_port}/webhook"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("RAPPORT_DATA_DIR") or PROJECT_ROOT / "var").resolve()
        log_format = env.get("LOG_FORMAT", "json").lower()
        if log_format not in ("json", "console"):
            raise SettingsError(f"LOG_FORMAT={log_format!r} must be 'json' or 'console'")
        web_port = _int(env, "WEB_PORT", 8000, maximum=65535)
        return cls(
            data_dir=data_dir,
            database_url=_optional(env, "DATABASE_URL") or f"sqlite:///{data_dir / 'rapport.db'}",
            tracker_database_url=_optional(env, "TRACKER_DATABASE_URL")
            or f"sqlite:///{data_dir / 'conversations.db'}",
            redis_url=_optional(env, "REDIS_URL"),
            rasa_port=_int(env, "RASA_PORT", 5005, maximum=65535),
            actions_port=_int(env, "ACTIONS_PORT", 5055, maximum=65535),
            web_port=web_port,
            bind_host=env.get("BIND_HOST", "127.0.0.1"),
            program_file=Path(env.get("PROGRAM_FILE") or PROJECT_ROOT / "data" / "program.yml"),
            shop_file=Path(env.get("SHOP_FILE") or PROJECT_ROOT / "data" / "shop.yml"),
            max_message_chars=_int(env, "MAX_MESSAGE_CHARS", 2000),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            log_format=log_format,
            rest_channel_token=_optional(env, "REST_CHANNEL_TOKEN"),
            store_api_token=_optional(env, "STORE_API_TOKEN"),
            public_base_url=(_optional(env, "PUBLIC_BASE_URL") or f"http://localhost:{web_port}").rstrip("/"),
            instagram_app_secret=_optional(env, "INSTAGRAM_APP_SECRET"),
            instagram_verify_token=_optional(env, "INSTAGRAM_VERIFY_TOKEN"),
            instagram_access_token=_optional(env, "INSTAGRAM_ACCESS_TOKEN"),
            instagram_api_base=(_optional(env, "INSTAGRAM_API_BASE") or "https://graph.instagram.com/v21.0").rstrip("/"),
            loyalty_jobs_interval_minutes=_int(
                env, "LOYALTY_JOBS_INTERVAL_MINUTES", 60, minimum=0, maximum=_MINUTES_PER_WEEK
            ),
            prediction_refit_hours=_int(env, "PREDICTION_REFIT_HOURS", 24, minimum=0, maximum=24 * 31),
            telegram_token=_optional(env, "TELEGRAM_TOKEN"),
            telegram_webhook_secret=_optional(env, "TELEGRAM_WEBHOOK_SECRET"),
            telegram_api_base=_optional(env, "TELEGRAM_API_BASE") or "https://api.telegram.org/bot",
            telegram_mode=_choice(env, "TELEGRAM_MODE", ("webhook", "polling")),
            notice_delivery_seconds=_int(env, "NOTICE_DELIVERY_SECONDS", 30, minimum=0, maximum=3600),
            agents_may_adjust_points=(env.get("AGENTS_MAY_ADJUST_POINTS") or "").strip().lower()
            in ("1", "true", "yes", "on"),
            widget_signing_secret=_optional(env, "WIDGET_SIGNING_SECRET"),
            widget_allowed_origins=_origins(env, "WIDGET_ALLOWED_ORIGINS"),
            environment=_choice(env, "RAPPORT_ENV", ("development", "production")),
            quizzes_dir=Path(env.get("QUIZZES_DIR") or PROJECT_ROOT / "data" / "quizzes"),
            fingerprint_secret=_optional(env, "FINGERPRINT_SECRET"),
            trusted_proxy_hops=_trusted_proxy_hops(env),
            tracker_store=_tracker_store(env),
            lock_lease_seconds=_int(env, "LOCK_LEASE_SECONDS", 10, minimum=2, maximum=600),
            action_timeout_seconds=_int(env, "ACTION_TIMEOUT_SECONDS", 15, minimum=1, maximum=300),
            shopify_webhook_secrets=_shop_secrets(env, "SHOPIFY_WEBHOOK_SECRETS"),
            woocommerce_webhook_secret=_optional(env, "WOOCOMMERCE_WEBHOOK_SECRET"),
        )


_settings: Optional[Settings] = None


def get_settings() -> Settings:
    """Settings of this process, read once."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    global _settings
    _settings = None
