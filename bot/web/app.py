"""The web app (aiohttp): the merchant console, the store API and the scheduled loyalty jobs.

`create_app(settings)` builds it (tests pass their own database); `serve(settings)` runs it on
BIND_HOST:WEB_PORT until SIGINT/SIGTERM (`python -m bot web`, started by `make run`).
"""
from __future__ import annotations

import asyncio
import errno
import hmac
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Awaitable, Callable, Optional

from aiohttp import web

from bot.app_context import DATABASE, EXECUTOR, PROGRAM, SETTINGS, WEBHOOK_REFUSALS
from bot.console.app import console_guard
from bot.db import Database, database_unavailable
from bot.identity import IdentityError
from bot.log import get_logger
from bot.loyalty.ledger import LedgerError
from bot.loyalty.program import Program, get_program
from bot.loyalty.rewards import CodeRefused
from bot.settings import Settings
from bot.web.errors import ApiError, database_down, from_http_exception, from_service_error
from bot.web.routes import BODY_LIMITS, setup_routes
from bot.web.scheduler import setup_scheduler
from bot.web.webhooks import setup_store_events_worker

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Threads for blocking service calls: within the database pool (SQLite 5+10, PostgreSQL 10+20), so a
# burst waits here rather than for a connection.
WORKER_THREADS = 8
SHUTDOWN_SECONDS = 5.0  # within the grace `make run` gives a server before SIGKILL
API_PREFIX = "/api/"
# After a 413 the rest of the body is read and dropped, up to this much and this long, so the client's
# connection can carry its next request; a body that does not end by then has its connection closed
# (`Connection: close`), so the client never sends a request on a connection the server is leaving.
DRAIN_MAX_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0


def create_app(
    settings: Settings, database: Optional[Database] = None, *, program: Optional[Program] = None,
    apply_store_events_in_child: bool = False,
) -> web.Application:
    """The web app. Without `database` it opens (and at cleanup closes) one on DATABASE_URL; without
    `program` it reads PROGRAM_FILE, again whenever the file changes. With `apply_store_events_in_child`
    (the served app) store events are applied in a child process (bot/web/store_events_process.py), which
    opens DATABASE_URL and reads PROGRAM_FILE itself.

    A broken program file raises ConfigError here, naming the file, key and reason: the app does not
    start rather than fail at the first order."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[_request_log, _json_errors(settings), _body_limit(settings), _bearer_auth(settings),
                     console_guard],
    )
    app[SETTINGS] = settings
    app[PROGRAM] = (lambda: program) if program is not None else (lambda: get_program(settings.program_file))
    app[PROGRAM]()
    # Made now, not at start-up: an application's state is frozen once it starts. Neither connects
    # nor starts a thread before the first request.
    app[DATABASE] = database or Database(settings.database_url)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="rapport-web")
    app[WEBHOOK_REFUSALS] = {}
    setup_routes(app)
    # Cleanup runs in reverse: the scheduler stops, then the worker threads finish, then the database closes.
    app.cleanup_ctx.append(_closing_database(owned=database is None))
    app.cleanup_ctx.append(_stopping_workers)
    setup_store_events_worker(app, in_child_process=apply_store_events_in_child)
    setup_scheduler(app, settings.loyalty_jobs_interval_minutes)
    return app


def _closing_database(owned: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        if owned:  # a database passed in belongs to the caller (tests)
            app[DATABASE].dispose()

    return context


async def _stopping_workers(app: web.Application) -> AsyncIterator[None]:
    yield
    app[EXECUTOR].shutdown(wait=True)  # requests have finished by now; a running job commits or rolls back


def _json_errors(settings: Settings) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPException as error:
            if error.status < 400:
                raise
            response = from_http_exception(error, settings.max_body_bytes).response()
            if isinstance(error, web.HTTPRequestEntityTooLarge) and not await _drained(request):
                response.force_close()
            return response
        except (LedgerError, IdentityError, CodeRefused) as error:
            mapped = from_service_error(error)
            assert mapped is not None
            return mapped.response()
        except Exception as error:
            if database_unavailable(error):
                log.warning("web.database_unavailable", method=request.method, route=_route(request),
                            error=type(getattr(error, "orig", None) or error).__name__)
                return database_down().response()
            log.exception("web.request_failed", method=request.method, route=_route(request))
            return ApiError(500, "internal_error", "the request failed on the server (logged)").response()

    return middleware


def _body_limit(settings: Settings) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A declared Content-Length over the route's limit (MAX_BODY_BYTES, or BODY_LIMITS') is refused before the
    body is read (413): the server does not wait for bytes it will throw away, and a body too large to drain
    closes the connection at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        limit = BODY_LIMITS.get(request.path, settings.max_body_bytes)
        if declared is not None and declared > limit:
            log.info("web.body_refused", route=_route(request), declared_bytes=declared)
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=declared)
        return await handler(request)

    return middleware


async def _drained(request: web.Request) -> bool:
    """Read and drop the rest of a refused body; True when it ended within DRAIN_MAX_BYTES and DRAIN_SECONDS
    (the connection can be kept), False otherwise (it must be closed)."""
    declared = request.content_length
    limit = BODY_LIMITS.get(request.path, request.app[SETTINGS].max_body_bytes)
    if declared is not None and declared > DRAIN_MAX_BYTES + limit:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_SECONDS
    dropped = 0
    content = request.content
    try:
        while not content.at_eof():
            left = deadline - loop.time()
            if left <= 0:
                return False
            chunk = await asyncio.wait_for(content.readany(), left)
            dropped += len(chunk)
            if dropped > DRAIN_MAX_BYTES:
                return False
            if not chunk:
                break
    except Exception:  # noqa: BLE001 - a timeout or a broken stream: the connection goes
        return False
    return True


def _bearer_auth(settings: Settings) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    expected = settings.store_api_token.encode() if settings.store_api_token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        if expected is None:
            # Off rather than open: the API moves points, so it never runs without a token.
            raise ApiError(503, "api_disabled", "the store API is off: set STORE_API_TOKEN to turn it on")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # compare_digest on bytes: constant time whatever the input (on str it requires ASCII). Header bytes
        # that are not UTF-8 reach us as surrogate escapes (aiohttp's decoding): encoded back, not refused.
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, expected):
            log.info("api.auth.refused", route=_route(request), had_token=bool(given.strip()))
            raise ApiError(
                401, "unauthorized", "send Authorization: Bearer <STORE_API_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="rapport"'},
            )
        return await handler(request)

    return middleware


@web.middleware
async def _request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    response = await handler(request)
    # The route pattern, not the path: a reward code in the URL is worth money.
    fields = dict(method=request.method, route=_route(request), status=response.status,
                  duration_ms=int((time.monotonic() - started) * 1000))
    if request.path in ("/health", "/ready"):
        log.debug("http.request", **fields)  # polled by `make run` and the load balancer
    else:
        log.info("http.request", **fields)
    return response


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (Rasa's server runs on it too): the web app's loop carries
    every request, and uvloop's costs less per request than asyncio's own (webhook intake is bound by it)."""
    try:
        import uvloop
    except ImportError:  # not on this platform: asyncio's own
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def serve(settings: Settings) -> int:
    """Run the web app until SIGINT or SIGTERM; the exit code."""
    app = create_app(settings, apply_store_events_in_child=True)

    async def announce(_app: web.Application) -> None:
        log.info("web.started", url=f"http://{settings.bind_host}:{settings.web_port}",
                 store_api="on" if settings.store_api_token else "off (STORE_API_TOKEN unset)",
                 loyalty_jobs_interval_minutes=settings.loyalty_jobs_interval_minutes)

    app.on_startup.append(announce)
    try:
        web.run_app(app, host=settings.bind_host, port=settings.web_port, print=None, access_log=None,
                    shutdown_timeout=SHUTDOWN_SECONDS, loop=_event_loop())
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        print(f"error: the web app cannot listen on {settings.bind_host}:{settings.web_port} ({error.strerror})",
              file=sys.stderr)
        return 1
    log.info("web.stopped")
    return 0
