"""The loyalty jobs (tier reviews, points expiry), the feedback requests, the console's housekeeping and the
repeat-purchase prediction's refit on timers inside the web app.

Every LOYALTY_JOBS_INTERVAL_MINUTES (0: off) `bot.loyalty.jobs.run_loyalty_jobs` runs on the app's
worker threads, and so do `bot.feedback.requests.run_feedback_requests`,
`bot.advocacy.review_requests.run_review_requests` and the console's housekeeping
(`bot.console.accounts.forget_expired`), each its own job; their counts are logged. One process never runs two at once (max_instances=1), and runs
missed while the machine slept collapse into one (coalesce). With several web app replicas (REDIS_URL set)
only the holder of the "web-jobs" lease (bot/leases.py) runs them, the refit included; the others skip their
turn and take over within a lease's time if the holder dies.

Every OUTBOX_SECONDS (while the loyalty jobs are on) `bot.outbox.service.route_due_messages` gives the due
proactive messages a chat (consent, quiet hours, the cap, the best reachable channel); each channel's sender
then sends them. It runs under the same lease.

Every PREDICTION_REFIT_HOURS (0: off) `bot.prediction.service.scheduled_refit` refits the prediction and
stores every customer's score, on its own timer (PREDICTION_SCHEDULER): it reads every order, so it runs
far less often than the loyalty jobs and does not depend on them being on. It skips a run when a refit
finished less than the interval ago (a restart, or another web process), so several processes share it.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional, Tuple

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import clock
from bot.console.accounts import forget_expired
from bot.advocacy.review_requests import run_review_requests
from bot.feedback.requests import run_feedback_requests
from bot.leases import Lease, RedisLease, lease_for
from bot.log import get_logger
from bot.loyalty.jobs import run_loyalty_jobs
from bot.outbox.service import CHANNEL_PREFERENCE, route_due_messages
from bot.settings import Settings
from bot.app_context import DATABASE, PROGRAM, SETTINGS, in_executor
from bot.prediction.service import scheduled_refit

log = get_logger(__name__)

JOB_ID = "loyalty_jobs"
FEEDBACK_JOB_ID = "feedback_requests"
REVIEW_JOB_ID = "review_requests"
CONSOLE_JOB_ID = "console_housekeeping"
PREDICTION_JOB_ID = "prediction_refit"
OUTBOX_JOB_ID = "outbox"
OUTBOX_SECONDS = 60
# The first run waits a little: start-up (and `make run` waiting on /health) should not share the
# database with a job that may touch every customer.
FIRST_RUN_DELAY = timedelta(minutes=1)
# The refit reads every order: after the start-up rush, and after the loyalty jobs' first run.
PREDICTION_FIRST_RUN_DELAY = timedelta(minutes=3)

SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
PREDICTION_SCHEDULER = web.AppKey("prediction_scheduler", AsyncIOScheduler)
OUTBOX_SCHEDULER = web.AppKey("outbox_scheduler", AsyncIOScheduler)
JOBS_LEASE = web.AppKey("jobs_lease", object)
LEASE_NAME = "web-jobs"
LEASE_SECONDS = 30.0


def setup_scheduler(
    app: web.Application, interval_minutes: int, *, first_run_delay: timedelta = FIRST_RUN_DELAY
) -> None:
    """Run the loyalty jobs every `interval_minutes` while the app runs (nothing when it is 0), and the
    prediction's refit every PREDICTION_REFIT_HOURS (the app's settings; nothing when 0)."""
    setup_prediction_refit(app, app[SETTINGS].prediction_refit_hours)
    if interval_minutes <= 0:
        return
    # Each its own job: one failing or running long does not hold up the others.
    jobs = ((JOB_ID, run_jobs_now), (FEEDBACK_JOB_ID, run_feedback_requests_now),
            (REVIEW_JOB_ID, run_review_requests_now),
            (CONSOLE_JOB_ID, run_console_housekeeping_now))
    _timer(app, SCHEDULER, jobs, timedelta(minutes=interval_minutes), first_run_delay, "loyalty_jobs.scheduled",
           interval_minutes=interval_minutes)
    _timer(app, OUTBOX_SCHEDULER, ((OUTBOX_JOB_ID, run_outbox_now),), timedelta(seconds=OUTBOX_SECONDS),
           first_run_delay, "outbox.scheduled", interval_seconds=OUTBOX_SECONDS)


def setup_prediction_refit(app: web.Application, hours: int, *,
                           first_run_delay: timedelta = PREDICTION_FIRST_RUN_DELAY) -> None:
    """Refit the repeat-purchase prediction every `hours` while the app runs; nothing when it is 0."""
    if hours <= 0 or PREDICTION_SCHEDULER in app:
        return
    _timer(app, PREDICTION_SCHEDULER, ((PREDICTION_JOB_ID, run_prediction_refit_now),), timedelta(hours=hours),
           first_run_delay, "prediction_refit.scheduled", interval_hours=hours)


def _timer(app: web.Application, key: "web.AppKey[AsyncIOScheduler]",
           jobs: Tuple[Tuple[str, Callable[[web.Application], Awaitable[object]]], ...], every: timedelta,
           first_run_delay: timedelta, event: str, **fields: int) -> None:
    """A scheduler (kept as app[key]) that runs each job every `every` from `first_run_delay` after start-up,
    while the app runs."""
    scheduler = AsyncIOScheduler(timezone=timezone.utc)
    app[key] = scheduler
    lease = _jobs_lease(app)

    async def running(app: web.Application) -> AsyncIterator[None]:
        for job_id, run in jobs:
            scheduler.add_job(
                _with_lease(lease, job_id, run),
                "interval",
                args=[app],
                id=job_id,
                seconds=every.total_seconds(),
                next_run_time=datetime.now(timezone.utc) + first_run_delay,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(every.total_seconds()),  # late is fine; skipped is not
                replace_existing=True,
            )
        scheduler.start()
        log.info(event, first_run_in_seconds=int(first_run_delay.total_seconds()), **fields)
        yield
        scheduler.shutdown(wait=False)
        # AsyncIOScheduler.shutdown is queued on the loop (call_soon_threadsafe): let it run, so a job
        # still waiting for its thread is cancelled before the thread pool is shut down.
        await asyncio.sleep(0)

    app.cleanup_ctx.append(running)


def _jobs_lease(app: web.Application) -> Lease:
    """The app's one jobs lease, kept (renewed) while the app runs: every timer's jobs run only while it is held."""
    if JOBS_LEASE in app:
        return app[JOBS_LEASE]
    lease = lease_for(app[SETTINGS].redis_url, LEASE_NAME, LEASE_SECONDS)
    app[JOBS_LEASE] = lease

    async def keeping(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.ensure_future(lease.keep(stop)) if isinstance(lease, RedisLease) else None
        yield
        stop.set()
        if task is not None:
            await task
        await lease.release()

    app.cleanup_ctx.append(keeping)
    return lease


async def run_prediction_refit_now(app: web.Application) -> Optional[Dict[str, int]]:
    """One scheduled refit of the prediction on a worker thread; its counts, or None if it failed (logged)."""
    every = timedelta(hours=max(app[SETTINGS].prediction_refit_hours, 1))
    return await _run_logged(app, "prediction_refit", lambda: scheduled_refit(
        app[DATABASE], clock.now(), every, currency_symbol=app[PROGRAM]().currency_symbol))


def _with_lease(lease: Lease, job_id: str, run: Callable[[web.Application], Any]) -> Callable[[web.Application], Any]:
    async def guarded(app: web.Application) -> Optional[Dict[str, int]]:
        # Checked again at the moment of running: the lease may have moved since the last renewal.
        if not await lease.refresh():
            log.info("scheduled_job.skipped", job=job_id, reason="another web app replica holds the jobs lease")
            return None
        return await run(app)

    return guarded


async def run_jobs_now(app: web.Application) -> Optional[Dict[str, int]]:
    """One run of the loyalty jobs on a worker thread; its counts, or None if it failed (logged)."""
    return await _run_logged(app, "loyalty_jobs", lambda: run_loyalty_jobs(app[DATABASE], app[PROGRAM](), clock.now()))


async def run_feedback_requests_now(app: web.Application) -> Optional[Dict[str, int]]:
    """One run of the feedback requests (bot/feedback/requests.py); its counts, or None if it failed."""
    return await _run_logged(app, "feedback_requests",
                             lambda: run_feedback_requests(app[DATABASE], app[PROGRAM](), clock.now()))


async def run_review_requests_now(app: web.Application) -> Optional[Dict[str, int]]:
    """Queue the due review requests in the outbox (bot/advocacy/review_requests.py); the count, or None."""
    return await _run_logged(app, "review_requests",
                             lambda: run_review_requests(app[DATABASE], app[PROGRAM](), clock.now()))


def outbox_channels(settings: Settings) -> Tuple[str, ...]:
    """The channels this installation runs (their secrets are set): the only ones messages are routed to."""
    running = {"telegram": bool(settings.telegram_token),
               "instagram": bool(settings.instagram_app_secret and settings.instagram_verify_token
                                 and settings.instagram_access_token),
               "widget": bool(settings.widget_signing_secret)}
    return tuple(channel for channel in CHANNEL_PREFERENCE if running[channel])


async def run_outbox_now(app: web.Application) -> Optional[Dict[str, int]]:
    """Route the due proactive messages (bot/outbox/); the counts, or None if it failed (logged)."""
    def work() -> Dict[str, int]:
        report = route_due_messages(app[PROGRAM]().proactive, clock.now(), database=app[DATABASE],
                                    channels=outbox_channels(app[SETTINGS]))
        return {"routed": report.routed, "postponed": report.postponed, "skipped": report.skipped}

    return await _run_logged(app, "outbox", work)


async def run_console_housekeeping_now(app: web.Application) -> Optional[Dict[str, int]]:
    """Forget ended console sessions and sign-in failures outside the rate-limit window."""
    def work() -> Dict[str, int]:
        with app[DATABASE].session(write=True) as session:
            return {"console_rows_forgotten": forget_expired(session, clock.now())}

    return await _run_logged(app, "console_housekeeping", work)


async def _run_logged(app: web.Application, name: str, work: Callable[[], Dict[str, int]]) -> Optional[Dict[str, int]]:
    """`work` on a worker thread, its counts logged; None if it failed (logged, retried next interval)."""
    started = time.monotonic()
    try:
        result = await in_executor(app, work)
    except Exception:  # noqa: BLE001 - a failed run is logged and retried at the next interval
        log.exception(f"{name}.failed", duration_ms=_since(started))
        return None
    log.info(f"{name}.finished", duration_ms=_since(started), **result)
    return result


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
