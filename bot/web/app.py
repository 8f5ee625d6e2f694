"""The web app (aiohttp): the merchant console, the store API and the scheduled loyalty jobs.

`create_app(settings)` builds it (tests pass their own database); `serve(settings)` runs it on
BIND_HOST:WEB_PORT until SIGINT/SIGTERM (`python -m bot web`, started by `make run`).
"""
from __future__ import annotations

import errno
import hmac
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Awaitable, Callable, Optional

from aiohttp import web

from bot.app_context import DATABASE, EXECUTOR, PROGRAM, SETTINGS
from bot.console.app import console_guard
from bot.db import Database
from bot.identity import IdentityError
from bot.log import get_logger
from bot.loyalty.ledger import LedgerError
from bot.loyalty.program import Program, get_program
from bot.loyalty.rewards import CodeRefused
from bot.settings import Settings
from bot.web.errors import ApiError, from_http_exception, from_service_error
from bot.web.routes import setup_routes
from bot.web.scheduler import setup_scheduler
from bot.web.webhooks import setup_store_events_worker

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Threads for blocking service calls: within the database pool (SQLite 5+10, PostgreSQL 10+20), so a
# burst waits here rather than for a connection.
WORKER_THREADS = 8
SHUTDOWN_SECONDS = 5.0  # within the grace `make run` gives a server before SIGKILL
API_PREFIX = "/api/"


def create_app(
    settings: Settings, database: Optional[Database] = None, *, program: Optional[Program] = None
) -> web.Application:
    """The web app. Without `database` it opens (and at cleanup closes) one on DATABASE_URL; without
    `program` it reads PROGRAM_FILE, again whenever the file changes.

    A broken program file raises ConfigError here, naming the file, key and reason: the app does not
    start rather than fail at the first order."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[_request_log, _json_errors(settings), _bearer_auth(settings), console_guard],
    )
    app[SETTINGS] = settings
    app[PROGRAM] = (lambda: program) if program is not None else (lambda: get_program(settings.program_file))
    app[PROGRAM]()
    # Made now, not at start-up: an application's state is frozen once it starts. Neither connects
    # nor starts a thread before the first request.
    app[DATABASE] = database or Database(settings.database_url)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="rapport-web")
    setup_routes(app)
    # Cleanup runs in reverse: the scheduler stops, then the worker threads finish, then the database closes.
    app.cleanup_ctx.append(_closing_database(owned=database is None))
    app.cleanup_ctx.append(_stopping_workers)
    setup_store_events_worker(app)
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
            return from_http_exception(error, settings.max_body_bytes).response()
        except (LedgerError, IdentityError, CodeRefused) as error:
            mapped = from_service_error(error)
            assert mapped is not None
            return mapped.response()
        except Exception:
            log.exception("web.request_failed", method=request.method, route=_route(request))
            return ApiError(500, "internal_error", "the request failed on the server (logged)").response()

    return middleware


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
        # compare_digest on bytes: constant time whatever the input (on str it requires ASCII).
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
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


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def serve(settings: Settings) -> int:
    """Run the web app until SIGINT or SIGTERM; the exit code."""
    app = create_app(settings)

    async def announce(_app: web.Application) -> None:
        log.info("web.started", url=f"http://{settings.bind_host}:{settings.web_port}",
                 store_api="on" if settings.store_api_token else "off (STORE_API_TOKEN unset)",
                 loyalty_jobs_interval_minutes=settings.loyalty_jobs_interval_minutes)

    app.on_startup.append(announce)
    try:
        web.run_app(app, host=settings.bind_host, port=settings.web_port, print=None, access_log=None,
                    shutdown_timeout=SHUTDOWN_SECONDS)
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        print(f"error: the web app cannot listen on {settings.bind_host}:{settings.web_port} ({error.strerror})",
              file=sys.stderr)
        return 1
    log.info("web.stopped")
    return 0
