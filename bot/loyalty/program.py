"""The loyalty program configuration (data/program.yml), validated on load."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bot.config_files import ConfigError, load_cached, read_yaml_mapping
from bot.outbox.policy import ProactivePolicy
from bot.shared.time_zones import known_time_zone

TIER_TERMS = ("rolling_12_months", "calendar_year", "lifetime")
REWARD_KINDS = ("amount_off", "percent_off", "free_shipping", "free_product")
MAX_TIERS = 5
# Earning rules with their own settings; a custom action may not reuse these names.
BUILT_IN_ACTIONS = ("signup", "birthday", "social_follow", "review_text", "review_photo", "review_video",
                    "quiz_completion", "user_content", "order", "referral")


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
    value: Optional[Decimal]  # amount off (currency) or percent off; None for the other kinds
    min_order: Optional[Decimal]
    valid_months: int
    product_sku: Optional[str]  # the product a free_product reward gives


@dataclass(frozen=True)
class EarningRules:
    points_per_currency_unit: int
    signup: int
    birthday: int
    social_follow: int
    social_networks: Tuple[str, ...]
    review_text: int
    review_photo: int
    review_video: int
    quiz_completion: int
    user_content: int  # an approved photo or video of the shop's products, per submission
    referral_advocate: int
    referral_friend_percent_off: int
    referral_friend_min_order: Decimal
    custom_actions: Dict[str, int]  # credited through the API: name → points


@dataclass(frozen=True)
class ReferralRules:
    """The friend's offer and the fraud rules (earning.referral holds the amounts)."""

    friend_offer_valid_days: int
    # Self-referral checks: the friend matches the advocate by normalized email, shipping address or IP hash.
    reject_same_email: bool
    reject_same_address: bool
    reject_same_ip: bool
    max_referred_purchases_per_ip: int  # beyond this, referred purchases from one IP wait for the merchant
    max_signups_per_ip_per_week: int  # beyond this, referral sign-ups from one IP are blocked


@dataclass(frozen=True)
class ReviewRequestPolicy:
    """When the bot may ask for a review (bot/advocacy/reviews.py enforces it)."""

    delay_days: int  # after fulfilment
    reminder_after_days: int  # one reminder this long after the request; 0 = no reminder
    max_messages_per_30_days: int  # requests and reminders to one shopper
    product_once_per_days: int  # one product is asked about at most once in this many days


FEEDBACK_KINDS = ("csat", "nps", "both")


@dataclass(frozen=True)
class FeedbackPolicy:
    """How the bot asks for feedback and what follows a low score (bot/feedback/ enforces it)."""

    kind: str = "csat"  # csat (1–5) | nps (0–10) | both (CSAT, then NPS), then one open "why"
    ask_after_orders: bool = True  # ask "How was your order #…?" after fulfilment (bot/feedback/requests.py)
    ask_after_fulfilment_days: int = 3
    link_latest_order_days: int = 90  # feedback given unprompted is about the latest paid order this recent
    low_csat_at_most: int = 2  # a CSAT this low (or lower) gets an apology and the offer of a person
    low_nps_at_most: int = 6  # NPS detractors (0–6)
    goodwill_points: int = 0  # credited once per order after a low score; 0 = off
    redact_transcripts: bool = True  # mask emails, phone and card-like numbers in stored transcripts
    transcript_max_turns: int = 50  # the last this many messages of the conversation are kept


@dataclass(frozen=True)
class CampaignPolicy:
    """Campaigns (bot/campaigns/): the share of each audience held out (not messaged) so results have an honest
    comparison, and how long after sending an order counts for the campaign."""

    holdout_percent: int = 10
    attribution_days: int = 30


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
    refunds_allow_negative_balance: bool
    referrals: ReferralRules
    review_requests: ReviewRequestPolicy
    feedback: FeedbackPolicy = FeedbackPolicy()
    proactive: ProactivePolicy = ProactivePolicy()
    campaigns: CampaignPolicy = CampaignPolicy()

    def reward(self, reward_id: str) -> Optional[Reward]:
        return next((reward for reward in self.rewards if reward.id == reward_id), None)

    def tier(self, name: Optional[str]) -> Optional[Tier]:
        return next((tier for tier in self.tiers if tier.name == name), None)

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

    def known_keys(self, data: Mapping[str, Any], key: str, allowed: Tuple[str, ...]) -> None:
        """A misspelt key would silently fall back to a default; name it instead."""
        for name in data:
            if name not in allowed:
                where = f"{key}.{name}" if key else str(name)
                raise self.fail(where, f"is not a known setting (expected one of: {', '.join(allowed)})")

    def boolean(self, data: Mapping[str, Any], key: str, name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, not {value!r}")
        return value

    def optional_mapping(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        return value

    def text(self, data: Mapping[str, Any], key: str, name: str, default: Optional[str] = None) -> str:
        value = data.get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "is required and must be non-empty text")
        return value.strip()


def parse_program(data: Mapping[str, Any], path: Path) -> Program:
    r = _Reader(path)
    r.known_keys(data, "", ("currency", "currency_symbol", "earning", "tiers", "rewards", "reward_codes", "expiry",
                            "refunds", "referrals", "review_requests", "feedback",
                            "proactive_messages", "campaigns"))
    currency = r.text(data, "currency", "currency")
    if len(currency) != 3 or not currency.isalpha():
        raise r.fail("currency", f"must be a 3-letter ISO code such as USD, not {currency!r}")

    earning = r.mapping(data, "earning", "earning")
    r.known_keys(earning, "earning", ("points_per_currency_unit", "signup", "birthday", "social_follow", "review",
                                      "quiz_completion", "user_content", "referral", "custom_actions"))
    review = r.mapping(earning, "earning.review", "review")
    r.known_keys(review, "earning.review", ("text", "photo", "video"))
    referral = r.mapping(earning, "earning.referral", "referral")
    r.known_keys(referral, "earning.referral", ("advocate", "friend_percent_off", "friend_min_order"))
    social = r.mapping(earning, "earning.social_follow", "social_follow")
    r.known_keys(social, "earning.social_follow", ("points", "networks"))
    networks = social.get("networks", [])
    if not isinstance(networks, list) or not all(isinstance(n, str) and n.strip() for n in networks):
        raise r.fail("earning.social_follow.networks", "must be a list of network names")
    custom = r.optional_mapping(earning, "earning.custom_actions", "custom_actions")
    custom_actions = {}
    for name in custom:
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise r.fail(f"earning.custom_actions.{name}", "action names are letters, digits, - and _")
        if name in BUILT_IN_ACTIONS:
            raise r.fail(f"earning.custom_actions.{name}", "is a built-in earning rule; choose another name")
        custom_actions[name] = r.integer(custom, f"earning.custom_actions.{name}", name, minimum=1)
    rules = EarningRules(
        points_per_currency_unit=r.integer(earning, "earning.points_per_currency_unit", "points_per_currency_unit"),
        signup=r.integer(earning, "earning.signup", "signup"),
        birthday=r.integer(earning, "earning.birthday", "birthday"),
        social_follow=r.integer(social, "earning.social_follow.points", "points"),
        social_networks=tuple(n.strip().lower() for n in networks),
        review_text=r.integer(review, "earning.review.text", "text"),
        review_photo=r.integer(review, "earning.review.photo", "photo"),
        review_video=r.integer(review, "earning.review.video", "video"),
        quiz_completion=r.integer(earning, "earning.quiz_completion", "quiz_completion"),
        user_content=r.integer(earning, "earning.user_content", "user_content", default=0),
        referral_advocate=r.integer(referral, "earning.referral.advocate", "advocate"),
        referral_friend_percent_off=r.integer(referral, "earning.referral.friend_percent_off", "friend_percent_off"),
        referral_friend_min_order=r.decimal(referral, "earning.referral.friend_min_order", "friend_min_order", default=0),
        custom_actions=custom_actions,
    )
    if rules.referral_friend_percent_off > 100:
        raise r.fail("earning.referral.friend_percent_off", "must be at most 100")

    tiers_block = r.mapping(data, "tiers", "tiers")
    r.known_keys(tiers_block, "tiers", ("term", "levels"))
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
        r.known_keys(level, key, ("name", "min_spend", "multiplier", "entry_reward_points", "perks"))
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
    codes = r.optional_mapping(data, "reward_codes", "reward_codes")
    r.known_keys(codes, "reward_codes", ("valid_months",))
    default_valid_months = r.integer(codes, "reward_codes.valid_months", "valid_months", default=6, minimum=1)
    rewards: List[Reward] = []
    for index, item in enumerate(rewards_list):
        key = f"rewards[{index}]"
        if not isinstance(item, dict):
            raise r.fail(key, "must be a mapping")
        r.known_keys(item, key, ("id", "title", "kind", "value", "points", "min_order", "valid_months", "product_sku"))
        kind = r.text(item, f"{key}.kind", "kind")
        if kind not in REWARD_KINDS:
            raise r.fail(f"{key}.kind", f"must be one of {', '.join(REWARD_KINDS)}, not {kind!r}")
        value = None
        if kind in ("amount_off", "percent_off"):
            value = r.decimal(item, f"{key}.value", "value", minimum=Decimal("0.01"))
            if kind == "percent_off" and value > 100:
                raise r.fail(f"{key}.value", "a percentage must be at most 100")
        elif "value" in item:
            raise r.fail(f"{key}.value", f"a {kind} reward has no value")
        product_sku = None
        if kind == "free_product":
            product_sku = r.text(item, f"{key}.product_sku", "product_sku")
        min_order = r.decimal(item, f"{key}.min_order", "min_order") if "min_order" in item else None
        if min_order is not None and kind == "amount_off" and value is not None and min_order < value:
            raise r.fail(f"{key}.min_order", f"must be at least the amount off ({value})")
        reward = Reward(
            id=r.text(item, f"{key}.id", "id"),
            title=r.text(item, f"{key}.title", "title"),
            kind=kind,
            points=r.integer(item, f"{key}.points", "points", minimum=1),
            value=value,
            min_order=min_order,
            valid_months=r.integer(item, f"{key}.valid_months", "valid_months", default=default_valid_months, minimum=1),
            product_sku=product_sku,
        )
        if any(existing.id == reward.id for existing in rewards):
            raise r.fail(f"{key}.id", f"duplicate reward id {reward.id!r}")
        rewards.append(reward)

    expiry = r.optional_mapping(data, "expiry", "expiry")
    r.known_keys(expiry, "expiry", ("inactive_months", "warn_days"))
    refunds = r.optional_mapping(data, "refunds", "refunds")
    r.known_keys(refunds, "refunds", ("allow_negative_balance",))
    inactive_months = r.integer(expiry, "expiry.inactive_months", "inactive_months", default=12, minimum=1)
    warn_days = r.integer(expiry, "expiry.warn_days", "warn_days", default=30)
    if warn_days >= inactive_months * 28:
        raise r.fail("expiry.warn_days", f"must be shorter than the {inactive_months}-month expiry period")
    return Program(
        currency=currency.upper(),
        currency_symbol=str(data.get("currency_symbol") or currency.upper() + " "),
        earning=rules,
        tier_term=term,
        tiers=tuple(tiers),
        rewards=tuple(sorted(rewards, key=lambda reward: reward.points)),
        reward_code_valid_months=default_valid_months,
        expiry_inactive_months=inactive_months,
        expiry_warn_days=warn_days,
        refunds_allow_negative_balance=r.boolean(
            refunds, "refunds.allow_negative_balance", "allow_negative_balance", default=False
        ),
        referrals=_referral_rules(r, data),
        review_requests=_review_request_policy(r, data),
        feedback=_feedback_policy(r, data),
        proactive=_proactive_policy(r, data),
        campaigns=_campaign_policy(r, data),
    )


def _campaign_policy(r: _Reader, data: Mapping[str, Any]) -> CampaignPolicy:
    block = r.optional_mapping(data, "campaigns", "campaigns")
    r.known_keys(block, "campaigns", ("holdout_percent", "attribution_days"))
    defaults = CampaignPolicy()
    holdout = r.integer(block, "campaigns.holdout_percent", "holdout_percent", default=defaults.holdout_percent)
    if holdout > 90:
        raise r.fail("campaigns.holdout_percent", f"must be 0 to 90 (a share of the audience), not {holdout}")
    return CampaignPolicy(
        holdout_percent=holdout,
        attribution_days=r.integer(block, "campaigns.attribution_days", "attribution_days",
                                   default=defaults.attribution_days, minimum=1),
    )


def _clock_time(r: _Reader, block: Mapping[str, Any], key: str, name: str) -> time:
    value = block.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)  # YAML 1.1 reads an unquoted 21:00 as 1260 (minutes)
    try:
        hours, minutes = str(value).strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise r.fail(key, f"must be a time of day like \"21:00\", not {value!r}") from None


def _proactive_policy(r: _Reader, data: Mapping[str, Any]) -> ProactivePolicy:
    block = r.optional_mapping(data, "proactive_messages", "proactive_messages")
    r.known_keys(block, "proactive_messages", ("quiet_hours", "time_zone", "max_per_30_days"))
    defaults = ProactivePolicy()
    zone = r.text(block, "proactive_messages.time_zone", "time_zone", default=defaults.time_zone)
    if known_time_zone(zone) is None:
        raise r.fail("proactive_messages.time_zone", f"must be an IANA time zone such as Europe/Berlin, not {zone!r}")
    start, end = defaults.quiet_start, defaults.quiet_end
    if "quiet_hours" in block:
        quiet = block["quiet_hours"]
        if quiet in (None, False, "off"):
            start = end = None
        else:
            quiet = r.mapping(block, "proactive_messages.quiet_hours", "quiet_hours")
            r.known_keys(quiet, "proactive_messages.quiet_hours", ("start", "end"))
            start = _clock_time(r, quiet, "proactive_messages.quiet_hours.start", "start")
            end = _clock_time(r, quiet, "proactive_messages.quiet_hours.end", "end")
    return ProactivePolicy(
        quiet_start=start, quiet_end=end, time_zone=zone,
        max_per_30_days=r.integer(block, "proactive_messages.max_per_30_days", "max_per_30_days",
                                  default=defaults.max_per_30_days, minimum=1),
    )


def _referral_rules(r: _Reader, data: Mapping[str, Any]) -> ReferralRules:
    block = r.optional_mapping(data, "referrals", "referrals")
    r.known_keys(block, "referrals", ("friend_offer_valid_days", "fraud"))
    fraud = r.optional_mapping(block, "referrals.fraud", "fraud")
    r.known_keys(fraud, "referrals.fraud", ("reject_same_email", "reject_same_address", "reject_same_ip",
                                            "max_referred_purchases_per_ip", "max_signups_per_ip_per_week"))
    return ReferralRules(
        friend_offer_valid_days=r.integer(block, "referrals.friend_offer_valid_days", "friend_offer_valid_days",
                                          default=30, minimum=1),
        reject_same_email=r.boolean(fraud, "referrals.fraud.reject_same_email", "reject_same_email", True),
        reject_same_address=r.boolean(fraud, "referrals.fraud.reject_same_address", "reject_same_address", True),
        reject_same_ip=r.boolean(fraud, "referrals.fraud.reject_same_ip", "reject_same_ip", True),
        max_referred_purchases_per_ip=r.integer(
            fraud, "referrals.fraud.max_referred_purchases_per_ip", "max_referred_purchases_per_ip", default=3, minimum=1),
        max_signups_per_ip_per_week=r.integer(
            fraud, "referrals.fraud.max_signups_per_ip_per_week", "max_signups_per_ip_per_week", default=10, minimum=1),
    )


def _review_request_policy(r: _Reader, data: Mapping[str, Any]) -> ReviewRequestPolicy:
    block = r.optional_mapping(data, "review_requests", "review_requests")
    r.known_keys(block, "review_requests", ("delay_days", "reminder_after_days", "max_messages_per_30_days",
                                            "product_once_per_days"))
    return ReviewRequestPolicy(
        delay_days=r.integer(block, "review_requests.delay_days", "delay_days", default=14),
        reminder_after_days=r.integer(block, "review_requests.reminder_after_days", "reminder_after_days", default=7),
        max_messages_per_30_days=r.integer(
            block, "review_requests.max_messages_per_30_days", "max_messages_per_30_days", default=5, minimum=1),
        product_once_per_days=r.integer(
            block, "review_requests.product_once_per_days", "product_once_per_days", default=365, minimum=1),
    )


def _feedback_policy(r: _Reader, data: Mapping[str, Any]) -> FeedbackPolicy:
    block = r.optional_mapping(data, "feedback", "feedback")
    r.known_keys(block, "feedback", ("kind", "ask_after_orders", "ask_after_fulfilment_days", "link_latest_order_days",
                                     "low_score", "redact_transcripts", "transcript_max_turns"))
    low = r.optional_mapping(block, "feedback.low_score", "low_score")
    r.known_keys(low, "feedback.low_score", ("csat_at_most", "nps_at_most", "goodwill_points"))
    defaults = FeedbackPolicy()
    kind = r.text(block, "feedback.kind", "kind", default=defaults.kind).lower()
    if kind not in FEEDBACK_KINDS:
        raise r.fail("feedback.kind", f"must be one of {', '.join(FEEDBACK_KINDS)}, not {kind!r}")
    csat_low = r.integer(low, "feedback.low_score.csat_at_most", "csat_at_most", default=defaults.low_csat_at_most,
                         minimum=1)
    if csat_low > 4:
        raise r.fail("feedback.low_score.csat_at_most", f"must be 1 to 4 (5 is the best score), not {csat_low}")
    nps_low = r.integer(low, "feedback.low_score.nps_at_most", "nps_at_most", default=defaults.low_nps_at_most)
    if nps_low > 9:
        raise r.fail("feedback.low_score.nps_at_most", f"must be 0 to 9 (10 is the best score), not {nps_low}")
    return FeedbackPolicy(
        kind=kind,
        ask_after_orders=r.boolean(block, "feedback.ask_after_orders", "ask_after_orders", defaults.ask_after_orders),
        ask_after_fulfilment_days=r.integer(block, "feedback.ask_after_fulfilment_days", "ask_after_fulfilment_days",
                                            default=defaults.ask_after_fulfilment_days),
        link_latest_order_days=r.integer(block, "feedback.link_latest_order_days", "link_latest_order_days",
                                         default=defaults.link_latest_order_days),
        low_csat_at_most=csat_low,
        low_nps_at_most=nps_low,
        goodwill_points=r.integer(low, "feedback.low_score.goodwill_points", "goodwill_points",
                                  default=defaults.goodwill_points),
        redact_transcripts=r.boolean(block, "feedback.redact_transcripts", "redact_transcripts",
                                     defaults.redact_transcripts),
        transcript_max_turns=r.integer(block, "feedback.transcript_max_turns", "transcript_max_turns",
                                       default=defaults.transcript_max_turns, minimum=1),
    )


def load_program(path: Path) -> Program:
    return parse_program(read_yaml_mapping(path), path)


def get_program(path: Optional[Path] = None) -> Program:
    """The program file from settings, reloaded when it changes on disk."""
    from bot.settings import get_settings

    return load_cached(path or get_settings().program_file, load_program)
