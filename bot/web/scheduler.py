"""The loyalty jobs (tier reviews, points expiry), the feedback requests and the console's housekeeping on a
timer inside the web app.

Every LOYALTY_JOBS_INTERVAL_MINUTES (0: off) `bot.loyalty.jobs.run_loyalty_jobs` runs on the app's
worker threads, and so do `bot.feedback.requests.run_feedback_requests` and the console's housekeeping
(`bot.console.accounts.forget_expired`), each its own job; their counts are logged. The jobs are idempotent, so several web processes may each run
them; one process never runs two at once (max_instances=1), and runs missed while the machine slept
collapse into one (coalesce).
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator, Callable, Dict, Optional

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import clock
from bot.console.accounts import forget_expired
from bot.feedback.requests import run_feedback_requests
from bot.log import get_logger
from bot.loyalty.jobs import run_loyalty_jobs
from bot.app_context import DATABASE, PROGRAM, in_executor

log = get_logger(__name__)

JOB_ID = "loyalty_jobs"
FEEDBACK_JOB_ID = "feedback_requests"
CONSOLE_JOB_ID = "console_housekeeping"
# The first run waits a little: start-up (and `make run` waiting on /health) should not share the
# database with a job that may touch every customer.
FIRST_RUN_DELAY = timedelta(minutes=1)

SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)


def setup_scheduler(
    app: web.Application, interval_minutes: int, *, first_run_delay: timedelta = FIRST_RUN_DELAY
) -> None:
    """Run the loyalty jobs every `interval_minutes` while the app runs; nothing when it is 0."""
    if interval_minutes <= 0:
        return
    scheduler = AsyncIOScheduler(timezone=timezone.utc)
    app[SCHEDULER] = scheduler

    async def running(app: web.Application) -> AsyncIterator[None]:
        # Each its own job: one failing or running long does not hold up the others.
        for job_id, run in ((JOB_ID, run_jobs_now), (FEEDBACK_JOB_ID, run_feedback_requests_now),
                            (CONSOLE_JOB_ID, run_console_housekeeping_now)):
            scheduler.add_job(
                run,
                "interval",
                args=[app],
                id=job_id,
                minutes=interval_minutes,
                next_run_time=datetime.now(timezone.utc) + first_run_delay,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=interval_minutes * 60,  # late is fine; skipped is not
                replace_existing=True,
            )
        scheduler.start()
        log.info("loyalty_jobs.scheduled", interval_minutes=interval_minutes,
                 first_run_in_seconds=int(first_run_delay.total_seconds()))
        yield
        scheduler.shutdown(wait=False)
        # AsyncIOScheduler.shutdown is queued on the loop (call_soon_threadsafe): let it run, so a job
        # still waiting for its thread is cancelled before the thread pool is shut down.
        await asyncio.sleep(0)

    app.cleanup_ctx.append(running)


async def run_jobs_now(app: web.Application) -> Optional[Dict[str, int]]:
    """One run of the loyalty jobs on a worker thread; its counts, or None if it failed (logged)."""
    return await _run_logged(app, "loyalty_jobs", lambda: run_loyalty_jobs(app[DATABASE], app[PROGRAM](), clock.now()))


async def run_feedback_requests_now(app: web.Application) -> Optional[Dict[str, int]]:
    """One run of the feedback requests (bot/feedback/requests.py); its counts, or None if it failed."""
    return await _run_logged(app, "feedback_requests",
                             lambda: run_feedback_requests(app[DATABASE], app[PROGRAM](), clock.now()))


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
