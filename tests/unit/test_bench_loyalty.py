"""The loyalty benchmark's code paths at a small scale, on real SQLite and PostgreSQL: the seeded store
must be one the services could have written (balances = ledger sums), and the report complete.
No timing is asserted: the figures depend on the machine."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Dict, Iterator

import pytest
from sqlalchemy import func, select, text

from bench import loyalty
from bot.db import Database
from bot.loyalty.ledger import verify_balances
from bot.models import Customer, LedgerEntry, RewardCode
from tests.services import POSTGRES_URL, require_service

CUSTOMERS = 2_000
ENTRIES = 20_000


def small_config(tmp_path: Path, engine: str, schema: str = loyalty.POSTGRES_SCHEMA) -> loyalty.Config:
    return loyalty.Config(
        customers=CUSTOMERS,
        entries=ENTRIES,
        engines=[engine],
        counts={"balance_read": 60, "earn": 20, "redeem": 20},
        warm_up={"balance_read": 5, "earn": 2, "redeem": 2},
        sqlite_path=tmp_path / "bench" / "loyalty.db",
        postgres_url=POSTGRES_URL,
        postgres_schema=schema,
        chunk_customers=300,  # several chunks, the last one short
    )


@pytest.fixture()
def postgres_schema() -> Iterator[str]:
    """A schema name of our own in the test database (the real run uses bench_loyalty), dropped after."""
    require_service("PostgreSQL", 5432)
    schema = f"bench_t_{uuid.uuid4().hex[:10]}"
    yield schema
    admin = Database(POSTGRES_URL)
    try:
        with admin.engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> loyalty.Config:
    if request.param == "postgresql":
        return small_config(tmp_path, "postgresql", request.getfixturevalue("postgres_schema"))
    return small_config(tmp_path, "sqlite")


def _counts(database: Database) -> Dict[str, int]:
    with database.session() as session:
        return {
            "customers": session.execute(select(func.count()).select_from(Customer)).scalar_one(),
            "entries": session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one(),
            "codes": session.execute(select(func.count()).select_from(RewardCode)).scalar_one(),
        }


def test_seeded_store_is_consistent_and_the_report_complete(config: loyalty.Config, tmp_path: Path) -> None:
    engine = config.engines[0]
    json_path = tmp_path / "loyalty.json"
    report = loyalty.run(config, json_path)

    result = report["results"][engine]
    seed = result["seed"]
    assert seed["rows"]["customers"] == CUSTOMERS and seed["rows"]["ledger_entries"] == ENTRIES
    assert seed["rows"]["reward_codes"] > 0
    assert set(seed["phases_seconds"]) == {"schema", "load", "indexes", "analyze", "flush"}
    assert seed["seconds"] >= 0 and seed["rows_per_second"] > 0 and seed["peak_rss_mib"] > 0
    assert {"start", "10%", "50%", "100%", "max"} <= set(seed["rss_mib"]) and seed["rss_growth_mib"] >= 0
    assert result["verify"]["mismatches"] == 0
    assert result["rows"] == {"customers": CUSTOMERS, "ledger_entries": ENTRIES,
                              "reward_codes": seed["rows"]["reward_codes"]}  # counted before measuring
    for name, count in config.counts.items():
        stats = result["operations"][name]
        assert stats["count"] == count and stats["errors"] == 0
        assert 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"] and stats["ops_per_second"] > 0
    assert {row["engine"] for row in report["targets"]} == {engine}
    assert {row["result"] for row in report["targets"]} <= {"PASS", "MISS"}
    assert json.loads(json_path.read_text())["results"][engine]["verify"]["mismatches"] == 0

    database = Database(loyalty.engine_url(engine, config))
    try:
        # The measured earns and redeems (warm-up included) went through the services.
        measured = sum(config.warm_up[name] + config.counts[name] for name in ("earn", "redeem"))
        assert _counts(database) == {"customers": CUSTOMERS, "entries": ENTRIES + measured,
                                     "codes": seed["rows"]["reward_codes"] + 2 + 20}
        with database.session() as session:
            assert verify_balances(session) == []
            # last_activity_at is the latest earn or redeem, as post_entry leaves it (same stored form).
            latest = (
                select(LedgerEntry.customer_id, func.max(LedgerEntry.created_at).label("at"))
                .where(LedgerEntry.kind.in_(("earn", "redeem")))
                .group_by(LedgerEntry.customer_id)
                .subquery()
            )
            stale = session.execute(
                select(func.count()).select_from(Customer).join(latest, latest.c.customer_id == Customer.id)
                .where(Customer.last_activity_at != latest.c.at)
            ).scalar_one()
            assert stale == 0
            # Every seeded redemption has its reward code, as redeem() issues them.
            orphans = session.execute(
                select(func.count()).select_from(LedgerEntry)
                .outerjoin(RewardCode, RewardCode.ledger_entry_id == LedgerEntry.id)
                .where(LedgerEntry.kind == "redeem", RewardCode.id.is_(None))
            ).scalar_one()
            assert orphans == 0
    finally:
        database.dispose()

    # --skip-seed measures the same data again and carries the seed figures over.
    again = loyalty.run(loyalty.Config(**{**config.__dict__, "skip_seed": True}), json_path)
    assert again["results"][engine]["seed"]["carried_over"] is True
    assert again["results"][engine]["verify"]["mismatches"] == 0
    assert again["results"][engine]["rows"]["ledger_entries"] == ENTRIES + measured
    assert "Targets" in loyalty.format_report(again)


def test_generation_is_deterministic_and_exact(program) -> None:
    def rows(dialect: loyalty.Dialect):
        generator = loyalty.Generator(301, 3_001, program, dialect)
        return list(generator), generator.reward_codes

    first, codes = rows(loyalty.SQLITE)
    assert (first, codes) == rows(loyalty.SQLITE)
    assert sum(len(entries) for _, entries, _ in first) == 3_001
    assert sum(len(found) for _, _, found in first) == codes > 0
    for customer, entries, _ in first:
        assert customer[5] == sum(entry[3] for entry in entries) >= 0  # points_balance
        assert customer[8] == max(entry[8] for entry in entries)  # last_activity_at
    postgres, _ = rows(loyalty.POSTGRESQL)
    assert [c[5] for c, _, _ in postgres] == [c[5] for c, _, _ in first]
    assert postgres[0][1][0][8].endswith("+00") and first[0][1][0][8].endswith(".000000")


def test_targets_are_judged_from_the_results() -> None:
    results = {
        "sqlite": {"seed": {"seconds": 200.0, "rss_growth_mib": 1.0},
                   "operations": {"balance_read": {"p99_ms": 0.5}}},
        "postgresql": {"seed": None, "operations": {"balance_read": {"p99_ms": 2.5}, "redeem": {"p99_ms": 9.0}}},
    }
    verdicts = {(row["engine"], row["metric"]): row["result"] for row in loyalty.evaluate_targets(results)}
    assert verdicts == {
        ("sqlite", "balance_read.p99_ms"): "PASS",
        ("sqlite", "seed.seconds"): "MISS",
        ("sqlite", "seed.rss_growth_mib"): "PASS",
        ("postgresql", "balance_read.p99_ms"): "MISS",
        ("postgresql", "redeem.p99_ms"): "PASS",
        ("postgresql", "seed.seconds"): "n/a",
        ("postgresql", "seed.rss_growth_mib"): "n/a",
    }
