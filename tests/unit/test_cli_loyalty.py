"""The loyalty commands against a real SQLite store: orders in, refunds, rewards and codes, jobs."""
from __future__ import annotations

import re

from bot.cli import main


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_orders_refunds_rewards_and_codes(environment, capsys, clock) -> None:
    main(["seed", "--demo"])
    capsys.readouterr()
    code, out = _run(capsys, "orders", "add", "--customer", "dev.patel@example.com", "--id", "9001", "--total", "120.00",
                     "--line", "OE-LT-001:Ember floor lamp:1:120.00")
    assert code == 0 and "+600 points (balance 700)" in out
    code, out = _run(capsys, "orders", "add", "--customer", "dev.patel@example.com", "--id", "9001", "--total", "120.00")
    assert code == 0 and "already recorded; nothing changed" in out
    code, out = _run(capsys, "orders", "refund", "--id", "9001", "--refund-id", "r1", "--amount", "30")
    assert code == 0 and "-150 points" in out and "partially_refunded" in out
    code, out = _run(capsys, "orders", "refund", "--id", "9001", "--refund-id", "r2", "--amount", "500")
    assert code == 1 and "exceeds the 90.00 left" in out

    code, out = _run(capsys, "rewards", "redeem", "--customer", "dev.patel@example.com", "--reward", "five-off")
    assert code == 0 and "(balance 50)" in out
    reward_code = re.search(r"code (RW-[0-9A-Z-]+)", out).group(1)
    code, out = _run(capsys, "rewards", "redeem", "--customer", "dev.patel@example.com", "--reward", "five-off")
    assert code == 1 and "does not have the 500 points" in out

    code, out = _run(capsys, "codes", "show", reward_code)
    assert code == 0 and "[codes] valid" in out
    code, out = _run(capsys, "codes", "use", reward_code, "--order", "9002")
    assert code == 0 and "marked used on order 9002" in out
    code, out = _run(capsys, "codes", "use", reward_code, "--order", "9003")
    assert code == 1 and "already used on order 9002" in out
    code, out = _run(capsys, "codes", "show", reward_code)
    assert code == 1 and "not valid (used)" in out

    code, out = _run(capsys, "points", "credit", "--customer", "dev.patel@example.com", "--action", "social_follow",
                     "--reference", "instagram")
    assert code == 0 and "+50 points" in out
    code, out = _run(capsys, "points", "credit", "--customer", "4", "--action", "newsletter_signup")
    assert code == 1 and "pass --key" in out

    code, out = _run(capsys, "ledger", "show", "--customer", "dev.patel@example.com")
    assert code == 0 and "Redeemed: $5 off" in out and "Order 9001 refunded" in out
    assert _run(capsys, "ledger", "verify")[0] == 0


def test_an_order_is_fulfilled_with_its_tracking(environment, capsys, clock) -> None:
    main(["seed", "--demo"])
    capsys.readouterr()
    _run(capsys, "orders", "add", "--customer", "dev.patel@example.com", "--id", "9001", "--total", "20.00")
    code, out = _run(capsys, "orders", "fulfil", "--id", "9001", "--carrier", "UPS", "--tracking-number", "1Z999")
    assert code == 0 and "order 9001 fulfilled at" in out and "tracking UPS 1Z999" in out, out
    code, out = _run(capsys, "orders", "fulfil", "--id", "9001")
    assert code == 0 and "already fulfilled; nothing changed" in out
    code, out = _run(capsys, "orders", "fulfil", "--id", "nope")
    assert code == 1 and "no order with id 'nope'" in out


def test_jobs_expire_points_and_review_tiers(environment, capsys, clock) -> None:
    main(["seed", "--demo"])
    capsys.readouterr()
    clock.advance(days=800)  # everyone inactive for more than 12 months; every tier term over
    code, out = _run(capsys, "loyalty", "tiers")
    assert code == 0 and re.search(r"\d+ customers at the end of their tier term reviewed: 0 up, [1-9]\d* down", out)
    code, out = _run(capsys, "loyalty", "expire")
    assert code == 0 and "0 points expired for 0 customers; 4 warnings queued" in out  # announced first
    clock.advance(days=30)
    code, out = _run(capsys, "loyalty", "expire")
    assert code == 0 and "points expired for 4 customers" in out
    assert _run(capsys, "loyalty", "expire")[1].startswith("[expiry] 0 points expired")
    assert _run(capsys, "ledger", "verify")[0] == 0


def test_bad_arguments_are_explained(environment, capsys) -> None:
    main(["seed", "--demo"])
    capsys.readouterr()
    code, out = _run(capsys, "orders", "add", "--customer", "nobody@example.com", "--id", "1", "--total", "5")
    assert code == 1 and "no customer 'nobody@example.com'" in out
    code, out = _run(capsys, "orders", "add", "--customer", "4", "--id", "1", "--total", "-5")
    assert code == 1 and "positive amount" in out
    code, out = _run(capsys, "orders", "add", "--customer", "4", "--id", "1", "--total", "5", "--currency", "EUR")
    assert code == 1 and "does not match the program's currency" in out
    code, out = _run(capsys, "codes", "show", "RW-NOPE-NOPE-NOPE")
    assert code == 1 and "no reward code" in out


def test_import_the_sample_exports_twice(environment, capsys) -> None:
    from bot.settings import PROJECT_ROOT

    samples = PROJECT_ROOT / "data" / "demo" / "import"
    code, first = _run(capsys, "import", str(samples / "orders.csv"), str(samples / "customers.csv"))
    assert code == 0, first
    code, second = _run(capsys, "import", str(samples / "customers.csv"), str(samples / "orders.csv"))
    assert code == 0 and "10 already present" in second, second
    assert _run(capsys, "ledger", "verify")[0] == 0
    code, out = _run(capsys, "import", "--orders", str(samples / "customers.csv"))
    assert code == 2, out
