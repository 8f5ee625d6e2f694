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
    assert program.earning.social_networks == ("instagram", "tiktok", "facebook") and program.earning.social_follow == 50
    assert (program.earning.review_text, program.earning.review_photo, program.earning.review_video) == (100, 200, 300)
    assert program.earning.referral_advocate == 500 and program.earning.referral_friend_min_order == 30
    assert program.earning.custom_actions == {"newsletter_signup": 50, "profile_completed": 25}
    assert {r.kind for r in program.rewards} == {"amount_off", "percent_off", "free_shipping", "free_product"}
    assert program.reward("twenty-off").min_order == 40 and program.reward("five-off").valid_months == 6
    assert program.reward("free-lamp").product_sku == "OE-LT-002"
    assert [t.entry_reward_points for t in program.tiers] == [0, 100, 250, 500]
    assert program.refunds_allow_negative_balance is False


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
        (lambda d: d.update(earnings={}), "earnings", "is not a known setting"),
        (lambda d: d["earning"].update(signup_bonus=5), "earning.signup_bonus", "is not a known setting"),
        (lambda d: d["rewards"][0].update(minimum_order=5), "rewards[0].minimum_order", "is not a known setting"),
        (lambda d: d["earning"]["social_follow"].update(networks="instagram"), "earning.social_follow.networks",
         "list of network names"),
        (lambda d: d["earning"]["custom_actions"].update(newsletter_signup=0), "earning.custom_actions.newsletter_signup",
         "at least 1"),
        (lambda d: d["earning"]["custom_actions"].update(birthday=10), "earning.custom_actions.birthday",
         "is a built-in earning rule"),
        (lambda d: d["earning"]["referral"].update(friend_min_order=-1), "earning.referral.friend_min_order", "at least 0"),
        (lambda d: d["rewards"][0].update(value=5), "rewards[0].value", "a free_shipping reward has no value"),
        (lambda d: d["rewards"][6].pop("product_sku"), "rewards[6].product_sku", "is required"),
        (lambda d: d["rewards"][1].update(min_order=2), "rewards[1].min_order", "at least the amount off"),
        (lambda d: d["rewards"][1].update(valid_months=0), "rewards[1].valid_months", "at least 1"),
        (lambda d: d["expiry"].update(warn_days=400), "expiry.warn_days", "shorter than the 12-month"),
        (lambda d: d["refunds"].update(allow_negative_balance="yes"), "refunds.allow_negative_balance", "true or false"),
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


def test_proactive_messages_quiet_hours_time_zone_and_cap() -> None:
    from datetime import time

    program = load_program(PROGRAM_FILE)
    assert (program.proactive.quiet_start, program.proactive.quiet_end) == (time(21, 0), time(9, 0))
    assert (program.proactive.time_zone, program.proactive.max_per_30_days) == ("UTC", 5)
    raw = _raw()
    raw["proactive_messages"] = {"quiet_hours": {"start": 1320, "end": "7:30"}, "time_zone": "Europe/Berlin"}
    parsed = parse_program(raw, PROGRAM_FILE).proactive  # YAML 1.1 reads an unquoted 22:00 as 1320
    assert (parsed.quiet_start, parsed.quiet_end, parsed.time_zone) == (time(22, 0), time(7, 30), "Europe/Berlin")
    raw["proactive_messages"] = {"quiet_hours": None}
    assert parse_program(raw, PROGRAM_FILE).proactive.quiet_start is None
    for bad, key in (({"time_zone": "Mars/Olympus"}, "proactive_messages.time_zone"),
                     ({"quiet_hours": {"start": "late", "end": "09:00"}}, "proactive_messages.quiet_hours.start"),
                     ({"max_per_30_days": 0}, "proactive_messages.max_per_30_days")):
        raw["proactive_messages"] = bad
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_program(raw, PROGRAM_FILE)
