"""The loyalty jobs (tier reviews, points expiry): the service function the CLI and the web app share,
and the web app's timer that runs it."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Optional

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from bot.db import Database
from bot.identity import create_customer
from bot.loyalty import jobs
from bot.loyalty.jobs import review_tiers, run_loyalty_jobs
from bot.loyalty.ledger import post_entry, verify_balances
from bot.models import Customer, OutboundMessage, TierChange
from bot.web import create_app
from bot.web.scheduler import JOB_ID, SCHEDULER, run_jobs_now, setup_scheduler
from tests.web.conftest import web_settings

NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)


def silver_until(db: Database, email: str, held_until: datetime) -> int:
    """A Silver customer with no spend, whose held tier's term ends at `held_until`."""
    with db.session(write=True) as session:
        customer = create_customer(session, email)
        customer.tier_name, customer.tier_held_until = "Silver", held_until
        return customer.id


def points_earned_at(db: Database, email: str, points: int, at: datetime) -> int:
    with db.session(write=True) as session:
        customer_id = create_customer(session, email).id
        post_entry(session, customer_id, points, kind="earn", reason="test", source="test",
                   idempotency_key=email, at=at)
        return customer_id


def customer(db: Database, customer_id: int) -> Customer:
    with db.session() as session:
        return session.get(Customer, customer_id)


def test_one_run_reviews_ended_terms_and_expires_inactive_points(any_db: Database, program, clock) -> None:
    clock.at(NOW)
    ended = silver_until(any_db, "ended@example.com", NOW - timedelta(days=1))
    current = silver_until(any_db, "current@example.com", NOW + timedelta(days=30))
    inactive = points_earned_at(any_db, "inactive@example.com", 700, NOW - relativedelta(months=13))
    soon = points_earned_at(any_db, "soon@example.com", 300, NOW - relativedelta(months=12) + timedelta(days=10))

    result = run_loyalty_jobs(any_db, program, NOW)
    # Both balances are announced first; the one already past its date expires warn_days later.
    assert result == {
        "tiers_reviewed": 1, "tiers_promoted": 0, "tiers_demoted": 1, "tiers_failed": 0,
        "customers_expired": 0, "points_expired": 0, "expiry_warnings_queued": 2,
    }
    assert customer(any_db, ended).tier_name == "Bronze" and customer(any_db, ended).tier_held_until > NOW
    assert customer(any_db, current).tier_name == "Silver"
    with any_db.session() as session:
        change = session.execute(select(TierChange)).scalar_one()
        assert (change.customer_id, change.from_tier, change.to_tier, change.direction) == (ended, "Silver", "Bronze", "down")
        assert sorted(session.execute(select(OutboundMessage.customer_id)).scalars().all()) == sorted([inactive, soon])

    # Idempotent: a second run (another web process, a manual run) changes nothing.
    assert set(run_loyalty_jobs(any_db, program, NOW).values()) == {0}

    later = run_loyalty_jobs(any_db, program, NOW + timedelta(days=30))
    assert (later["customers_expired"], later["points_expired"]) == (2, 1000)
    assert customer(any_db, inactive).points_balance == 0 and customer(any_db, soon).points_balance == 0
    with any_db.session() as session:
        assert verify_balances(session) == []


def test_reviews_go_in_batches_and_a_failing_customer_is_skipped_not_retried_forever(
    sqlite_db: Database, program, clock, monkeypatch, capsys
) -> None:
    clock.at(NOW)
    ids = [silver_until(sqlite_db, f"c{i}@example.com", NOW - timedelta(days=1)) for i in range(5)]
    broken = ids[2]
    real = jobs.recompute_tier

    def recompute(session, program, customer_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if customer_id == broken:
            raise RuntimeError("corrupt row")
        return real(session, program, customer_id, *args, **kwargs)

    monkeypatch.setattr(jobs, "recompute_tier", recompute)
    report = review_tiers(sqlite_db, program, NOW, batch_size=2)
    assert (report.reviewed, report.demoted, report.failed) == (4, 4, 1)
    assert [customer(sqlite_db, i).tier_name for i in ids] == ["Bronze", "Bronze", "Silver", "Bronze", "Bronze"]
    assert "tiers.review_failed" in capsys.readouterr().err


async def test_the_web_app_runs_the_jobs_on_its_timer(sqlite_db: Database, program, clock, tmp_path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    clock.at(NOW)
    ended = silver_until(sqlite_db, "ended@example.com", NOW - timedelta(days=1))
    app = create_app(web_settings(tmp_path), sqlite_db, program=program)
    setup_scheduler(app, 1, first_run_delay=timedelta(0))
    scheduler = app[SCHEDULER]
    async with TestClient(TestServer(app)):
        job = scheduler.get_job(JOB_ID)
        assert job is not None and job.trigger.interval == timedelta(minutes=1)
        for _ in range(100):
            if customer(sqlite_db, ended).tier_name == "Bronze":
                break
            await asyncio.sleep(0.1)
        assert customer(sqlite_db, ended).tier_name == "Bronze"
    assert not scheduler.running


@pytest.mark.parametrize("interval, scheduled", [("0", False), ("60", True)])
async def test_the_interval_setting_turns_the_timer_on_or_off(sqlite_db, program, tmp_path, interval, scheduled) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    app = create_app(web_settings(tmp_path, LOYALTY_JOBS_INTERVAL_MINUTES=interval), sqlite_db, program=program)
    assert (SCHEDULER in app) is scheduled
    async with TestClient(TestServer(app)):
        if scheduled:
            job = app[SCHEDULER].get_job(JOB_ID)
            assert job.trigger.interval == timedelta(minutes=60)
            # Not at once: start-up and `make run`'s health check come first.
            assert job.next_run_time > datetime.now(timezone.utc) + timedelta(seconds=30)


async def test_a_failed_run_is_logged_and_the_timer_keeps_going(sqlite_db, program, tmp_path, monkeypatch, capsys) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    def fail(*_args: object) -> Optional[dict]:
        raise RuntimeError("database gone")

    monkeypatch.setattr("bot.web.scheduler.run_loyalty_jobs", fail)
    app = create_app(web_settings(tmp_path), sqlite_db, program=program)
    async with TestClient(TestServer(app)):
        assert await run_jobs_now(app) is None
    assert "loyalty_jobs.failed" in capsys.readouterr().err


async def test_a_successful_run_logs_its_counts(sqlite_db, program, tmp_path, clock, capsys) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    clock.at(NOW)
    silver_until(sqlite_db, "ended@example.com", NOW - timedelta(days=1))
    app = create_app(web_settings(tmp_path), sqlite_db, program=program)
    async with TestClient(TestServer(app)):
        result = await run_jobs_now(app)
    assert result is not None and result["tiers_demoted"] == 1
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "loyalty_jobs.finished" in line]
    assert len(logged) == 1 and logged[0]["tiers_demoted"] == 1 and logged[0]["level"] == "info"


async def test_console_housekeeping_forgets_ended_sessions(sqlite_db, program, tmp_path) -> None:
    from datetime import datetime, timedelta, timezone

    from aiohttp.test_utils import TestClient, TestServer
    from sqlalchemy import func, select

    from bot import clock as clock_module
    from bot.console.accounts import SESSION_LIFETIME, add_merchant, open_session
    from bot.models import ConsoleSession
    from bot.web.scheduler import CONSOLE_JOB_ID, run_console_housekeeping_now

    start = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)
    with sqlite_db.session(write=True) as session:
        open_session(session, add_merchant(session, "olive@shop.example", "Olive", "owner", "long password 1", start), start)
    app = create_app(web_settings(tmp_path, LOYALTY_JOBS_INTERVAL_MINUTES="60"), sqlite_db, program=program)
    async with TestClient(TestServer(app)):
        assert app[SCHEDULER].get_job(CONSOLE_JOB_ID) is not None
        clock_module.set_clock(lambda: start + SESSION_LIFETIME + timedelta(seconds=1))
        try:
            assert await run_console_housekeeping_now(app) == {"console_rows_forgotten": 1}
        finally:
            clock_module.set_clock(None)
    with sqlite_db.session() as session:
        assert session.execute(select(func.count()).select_from(ConsoleSession)).scalar_one() == 0


async def test_the_outbox_job_routes_due_messages_with_the_programs_rules(sqlite_db, program, tmp_path, clock) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.identity import link_identity
    from bot.outbox.service import enqueue
    from bot.web.scheduler import OUTBOX_JOB_ID, OUTBOX_SCHEDULER, run_outbox_now

    clock.at(NOW)  # 12:00 UTC: outside the demo program's quiet hours
    with sqlite_db.session(write=True) as session:
        customer_id = create_customer(session, "ann@example.com").id
        link_identity(session, customer_id, "telegram", "777")
        message_id = enqueue(session, customer_id, "tier_change", "You're Gold now", "tier-change:1", NOW).id
    without_telegram = create_app(web_settings(tmp_path, LOYALTY_JOBS_INTERVAL_MINUTES="60"), sqlite_db,
                                  program=program)
    async with TestClient(TestServer(without_telegram)):
        assert await run_outbox_now(without_telegram) == {"routed": 0, "postponed": 1, "skipped": 0}
    with sqlite_db.session(write=True) as session:
        row = session.get(OutboundMessage, message_id)
        assert (row.channel, row.reason) == (None, "no chat on a channel this shop runs")
        row.send_after = NOW  # looked at again now rather than in an hour
    app = create_app(web_settings(tmp_path, LOYALTY_JOBS_INTERVAL_MINUTES="60", TELEGRAM_TOKEN="123:abc"), sqlite_db,
                     program=program)
    async with TestClient(TestServer(app)):
        assert app[OUTBOX_SCHEDULER].get_job(OUTBOX_JOB_ID).trigger.interval == timedelta(seconds=60)
        assert await run_outbox_now(app) == {"routed": 1, "postponed": 0, "skipped": 0}
    with sqlite_db.session() as session:
        row = session.get(OutboundMessage, message_id)
        assert (row.status, row.channel, row.recipient, row.routed_at) == ("queued", "telegram", "777", NOW)
