"""The loyalty program configuration (data/program.yml), validated on load."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

from bot.config_files import ConfigError, load_cached, read_yaml_mapping

TIER_TERMS = ("rolling_12_months", "calendar_year", "lifetime")
REWARD_KINDS = ("amount_off", "percent_off", "free_shipping", "free_product")
MAX_TIERS = 5


@dataclass(frozen=True)
class Tier:
    name: str
    min_spend: Decimal
    multiplier: Decimal
    entry_reward_points: int
    perks: Tuple[str, ...]


@dataclass(frozen=True)
class Reward:
    id: str
    title: str
    kind: str
    points: int
    value: Optional[Decimal]


@dataclass(frozen=True)
class EarningRules:
    points_per_currency_unit: int
    signup: int
    birthday: int
    social_follow: int
    review_text: int
    review_photo: int
    review_video: int
    quiz_completion: int
    referral_advocate: int
    referral_friend_percent_off: int


@dataclass(frozen=True)
class Program:
    currency: str
    currency_symbol: str
    earning: EarningRules
    tier_term: str
    tiers: Tuple[Tier, ...]
    rewards: Tuple[Reward, ...]
    reward_code_valid_months: int
    expiry_inactive_months: int
    expiry_warn_days: int

    def money(self, amount: Decimal) -> str:
        """An amount in the program's currency, e.g. "$12.50" or "$300"."""
        amount = Decimal(amount)
        text = f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,.2f}"
        return f"{self.currency_symbol}{text}"


class _Reader:
    """Walks the YAML mapping and reports the first problem with its dotted key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.path, key, problem)

    def mapping(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict):
            raise self.fail(key, "is required and must be a mapping")
        return value

    def integer(self, data: Mapping[str, Any], key: str, name: str, default: Optional[int] = None,
                minimum: int = 0) -> int:
        value = data.get(name, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be a whole number, not {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def decimal(self, data: Mapping[str, Any], key: str, name: str, default: Any = None,
                minimum: Decimal = Decimal(0)) -> Decimal:
        value = data.get(name, default)
        if value is None:
            raise self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, not {value!r}")
        number = Decimal(str(value))
        if number < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return number

    def text(self, data: Mapping[str, Any], key: str, name: str, default: Optional[str] = None) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "is required and must be non-empty text")
        return value.strip()


def parse_program(data: Mapping[str, Any], path: Path) -> Program:
    r = _Reader(path)
    currency = r.text(data, "currency", "currency")
    if len(currency) != 3 or not currency.isalpha():
        raise r.fail("currency", f"must be a 3-letter ISO code such as USD, not {currency!r}")

    earning = r.mapping(data, "earning", "earning")
    review = r.mapping(earning, "earning.review", "review")
    referral = r.mapping(earning, "earning.referral", "referral")
    rules = EarningRules(
        points_per_currency_unit=r.integer(earning, "earning.points_per_currency_unit", "points_per_currency_unit"),
        signup=r.integer(earning, "earning.signup", "signup"),
        birthday=r.integer(earning, "earning.birthday", "birthday"),
        social_follow=r.integer(earning, "earning.social_follow", "social_follow"),
        review_text=r.integer(review, "earning.review.text", "text"),
        review_photo=r.integer(review, "earning.review.photo", "photo"),
        review_video=r.integer(review, "earning.review.video", "video"),
        quiz_completion=r.integer(earning, "earning.quiz_completion", "quiz_completion"),
        referral_advocate=r.integer(referral, "earning.referral.advocate", "advocate"),
        referral_friend_percent_off=r.integer(referral, "earning.referral.friend_percent_off", "friend_percent_off"),
    )
    if rules.referral_friend_percent_off > 100:
        raise r.fail("earning.referral.friend_percent_off", "must be at most 100")

    tiers_block = r.mapping(data, "tiers", "tiers")
    term = r.text(tiers_block, "tiers.term", "term")
    if term not in TIER_TERMS:
        raise r.fail("tiers.term", f"must be one of {', '.join(TIER_TERMS)}, not {term!r}")
    levels = tiers_block.get("levels")
    if not isinstance(levels, list) or not levels:
        raise r.fail("tiers.levels", "must be a non-empty list")
    if len(levels) > MAX_TIERS:
        raise r.fail("tiers.levels", f"has {len(levels)} tiers; at most {MAX_TIERS} are allowed")
    tiers: List[Tier] = []
    for index, level in enumerate(levels):
        key = f"tiers.levels[{index}]"
        if not isinstance(level, dict):
            raise r.fail(key, "must be a mapping")
        perks = level.get("perks", [])
        if not isinstance(perks, list) or not all(isinstance(p, str) for p in perks):
            raise r.fail(f"{key}.perks", "must be a list of text")
        tier = Tier(
            name=r.text(level, f"{key}.name", "name"),
            min_spend=r.decimal(level, f"{key}.min_spend", "min_spend"),
            multiplier=r.decimal(level, f"{key}.multiplier", "multiplier", minimum=Decimal(1)),
            entry_reward_points=r.integer(level, f"{key}.entry_reward_points", "entry_reward_points", default=0),
            perks=tuple(perks),
        )
        if tiers and tier.min_spend <= tiers[-1].min_spend:
            raise r.fail(f"{key}.min_spend", "must be higher than the previous tier's")
        if any(t.name.lower() == tier.name.lower() for t in tiers):
            raise r.fail(f"{key}.name", f"duplicate tier name {tier.name!r}")
        tiers.append(tier)
    if tiers[0].min_spend != 0:
        raise r.fail("tiers.levels[0].min_spend", "the first tier must start at 0 so every customer has a tier")

    rewards_list = data.get("rewards")
    if not isinstance(rewards_list, list) or not rewards_list:
        raise r.fail("rewards", "must be a non-empty list")
    rewards: List[Reward] = []
    for index, item in enumerate(rewards_list):
        key = f"rewards[{index}]"
        if not isinstance(item, dict):
            raise r.fail(key, "must be a mapping")
        kind = r.text(item, f"{key}.kind", "kind")
        if kind not in REWARD_KINDS:
            raise r.fail(f"{key}.kind", f"must be one of {', '.join(REWARD_KINDS)}, not {kind!r}")
        value = None
        if kind in ("amount_off", "percent_off"):
            value = r.decimal(item, f"{key}.value", "value", minimum=Decimal("0.01"))
            if kind == "percent_off" and value > 100:
                raise r.fail(f"{key}.value", "a percentage must be at most 100")
        reward = Reward(
            id=r.text(item, f"{key}.id", "id"),
            title=r.text(item, f"{key}.title", "title"),
            kind=kind,
            points=r.integer(item, f"{key}.points", "points", minimum=1),
            value=value,
        )
        if any(existing.id == reward.id for existing in rewards):
            raise r.fail(f"{key}.id", f"duplicate reward id {reward.id!r}")
        rewards.append(reward)

    codes = data.get("reward_codes", {}) or {}
    expiry = data.get("expiry", {}) or {}
    return Program(
        currency=currency.upper(),
        currency_symbol=str(data.get("currency_symbol") or currency.upper() + " "),
        earning=rules,
        tier_term=term,
        tiers=tuple(tiers),
        rewards=tuple(sorted(rewards, key=lambda reward: reward.points)),
        reward_code_valid_months=r.integer(codes, "reward_codes.valid_months", "valid_months", default=6, minimum=1),
        expiry_inactive_months=r.integer(expiry, "expiry.inactive_months", "inactive_months", default=12, minimum=1),
        expiry_warn_days=r.integer(expiry, "expiry.warn_days", "warn_days", default=30),
    )


def load_program(path: Path) -> Program:
    return parse_program(read_yaml_mapping(path), path)


def get_program(path: Optional[Path] = None) -> Program:
    """The program file from settings, reloaded when it changes on disk."""
    from bot.settings import get_settings

    return load_cached(path or get_settings().program_file, load_program)
