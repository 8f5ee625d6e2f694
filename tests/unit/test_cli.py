"""`python -m bot …` against a real SQLite store in a temporary data folder."""
from __future__ import annotations

from sqlalchemy import update

from bot.cli import main
from bot.db import get_database
from bot.models import Customer


def test_init_seed_list_verify(environment, capsys) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["seed", "--demo"]) == 0
    assert "41 products added, 4 customers added, 0 already present" in capsys.readouterr().out
    assert main(["seed", "--demo"]) == 0
    assert "0 products added, 0 customers added, 4 already present" in capsys.readouterr().out

    assert main(["customers", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice.moreau@example.com" in listing and "1,598" in listing and "Silver" in listing and "rest:alice" in listing
    assert "chloe.tan@example.com" in listing and "Platinum" in listing

    assert main(["ledger", "verify"]) == 0
    assert "4 customers checked, 0 mismatches" in capsys.readouterr().out
    with get_database().session(write=True) as session:
        session.execute(update(Customer).where(Customer.id == 2).values(points_balance=9999))
    assert main(["ledger", "verify"]) == 1
    assert "customer 2: balance 9999 != ledger sum 545" in capsys.readouterr().out


def test_link_a_sender(environment, capsys) -> None:
    main(["seed", "--demo"])
    assert main(["customers", "link", "--email", "Bob.Okafor@example.com", "--channel", "telegram", "--sender", "777"]) == 0
    assert main(["customers", "link", "--email", "alice.moreau@example.com", "--channel", "telegram", "--sender", "777"]) == 1
    assert "already linked to another customer" in capsys.readouterr().err
    assert main(["customers", "link", "--email", "nobody@example.com", "--channel", "rest", "--sender", "x"]) == 1


def test_bad_configuration_is_reported_not_raised(environment, monkeypatch, tmp_path, capsys) -> None:
    broken = tmp_path / "program.yml"
    broken.write_text("currency: USD\nearning: 5\n")
    monkeypatch.setenv("PROGRAM_FILE", str(broken))
    from bot.settings import reset_settings

    reset_settings()
    assert main(["config", "check"]) == 2
    assert "program.yml: earning: is required and must be a mapping" in capsys.readouterr().err


def test_seed_without_demo_flag_explains(environment, capsys) -> None:
    assert main(["seed"]) == 2
    assert "--demo" in capsys.readouterr().err
