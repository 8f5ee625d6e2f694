from copy import deepcopy
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from bot.config_files import ConfigError
from bot.loyalty.program import load_program, parse_program
from bot.settings import PROJECT_ROOT

PROGRAM_FILE = PROJECT_ROOT / "data" / "program.yml"


def _raw() -> dict:
    return yaml.safe_load(PROGRAM_FILE.read_text())


def test_demo_program_has_the_product_defaults() -> None:
    program = load_program(PROGRAM_FILE)
    assert program.earning.points_per_currency_unit == 5
    assert program.earning.signup == 100
    assert [t.name for t in program.tiers] == ["Bronze", "Silver", "Gold", "Platinum"]
    assert [t.min_spend for t in program.tiers] == [0, 300, 750, 1500]
    assert [t.multiplier for t in program.tiers] == [Decimal("1.0"), Decimal("1.25"), Decimal("1.5"), Decimal("2.0")]
    assert [(r.title, r.points) for r in program.rewards][:3] == [("Free shipping", 400), ("$5 off", 500), ("$10 off", 1000)]
    assert program.expiry_inactive_months == 12 and program.expiry_warn_days == 30


@pytest.mark.parametrize(
    "change, key, problem",
    [
        (lambda d: d.pop("currency"), "currency", "is required"),
        (lambda d: d.update(currency="dollars"), "currency", "3-letter ISO code"),
        (lambda d: d["earning"].update(signup=-5), "earning.signup", "at least 0"),
        (lambda d: d["earning"].update(points_per_currency_unit="five"), "earning.points_per_currency_unit", "whole number"),
        (lambda d: d["tiers"].update(term="weekly"), "tiers.term", "must be one of"),
        (lambda d: d["tiers"]["levels"][2].update(min_spend=100), "tiers.levels[2].min_spend", "higher than the previous"),
        (lambda d: d["tiers"]["levels"][0].update(min_spend=10), "tiers.levels[0].min_spend", "must start at 0"),
        (lambda d: d["tiers"]["levels"].extend([{"name": "X", "min_spend": 5000, "multiplier": 3}] * 2), "tiers.levels", "at most 5"),
        (lambda d: d["tiers"]["levels"][1].update(multiplier=0.5), "tiers.levels[1].multiplier", "at least 1"),
        (lambda d: d["rewards"][1].update(kind="cash"), "rewards[1].kind", "must be one of"),
        (lambda d: d["rewards"][1].pop("value"), "rewards[1].value", "is required"),
        (lambda d: d["rewards"][2].update(id="five-off"), "rewards[2].id", "duplicate"),
        (lambda d: d["rewards"][0].update(points=0), "rewards[0].points", "at least 1"),
    ],
)
def test_invalid_program_names_the_key_and_the_problem(change, key, problem) -> None:
    data = deepcopy(_raw())
    change(data)
    with pytest.raises(ConfigError) as caught:
        parse_program(data, Path("program.yml"))
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"program.yml: {key}: ")


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_program(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("currency: [USD\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_program(broken)


def test_money_formatting() -> None:
    program = load_program(PROGRAM_FILE)
    assert program.money(Decimal("5")) == "$5"
    assert program.money(Decimal("217.5")) == "$217.50"
    assert program.money(Decimal("1290")) == "$1,290"
