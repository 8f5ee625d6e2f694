"""Campaigns: made (create_campaign), previewed (dry_run), sent (send_campaign) and answered (record_response).

A campaign is a message (text with personal fields and buttons that do what the bot already does: redeem,
take the quiz, …) or a one-question poll (its options are buttons; a typed answer naming an option counts
too). Its audience is resolved when it is previewed or sent; a stable share of it (bot/campaigns/holdout.py,
program `campaigns.holdout_percent`) is held out. Every other member gets one outbox message (kind
"campaign", dedupe key per campaign and customer): the outbox's rules — consent, quiet hours, the cap per
30 days, the best reachable chat — decide who gets it where, and the dry run asks those same rules
(bot.outbox.service.preview_routes) without writing anything. An optional bonus is credited once per
customer who acts (answers the poll or taps a button), through the ledger with the key (campaign, customer).
"""
from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.campaigns.holdout import in_holdout
from bot.loyalty.earning import Credit, award
from bot.loyalty.expiry import expiry_outlook
from bot.loyalty.program import Program
from bot.loyalty.tiers import tier_status
from bot.models import Campaign, CampaignRecipient, CampaignResponse, ChannelIdentity, Customer, OutboundMessage
from bot.outbox.service import RouteDecision, enqueue, preview_routes
from bot.segments.service import UnknownSegment, member_ids
from bot.segments.service import find as find_segment
from bot.segments.service import resolve as resolve_segment

OUTBOX_KIND = "campaign"
POLL_INTENT, CAMPAIGN_ENTITY, OPTION_ENTITY = "answer_poll", "campaign", "poll_option"
# What a message's button does: the intent its payload carries (with the campaign, so a tap is recorded).
BUTTON_ACTIONS = {
    "redeem": ("Redeem", "redeem_reward"),
    "quiz": ("Take the quiz", "start_quiz"),
    "points": ("My points", "check_points"),
    "tier": ("My tier", "check_tier"),
    "refer": ("Invite a friend", "get_referral_link"),
    "review": ("Leave a review", "leave_review"),
}
PERSONAL_FIELDS = ("first_name", "tier", "balance", "expiring_points", "expiry_date")
MAX_TEXT_CHARS = 1000
MAX_BUTTONS = 10
MAX_TITLE_CHARS = 20  # Instagram's quick replies take 20 characters
MAX_PAYLOAD_BYTES = 64  # Telegram's callback_data
RELEVANCE = timedelta(days=7)  # a campaign message that could not go out within a week is dropped
POLL_OPEN = timedelta(days=14)  # a typed answer counts this long after the poll was sent
MAX_TYPED_ANSWER = 80  # longer messages are never taken as a poll answer
PREVIEW_TEXTS = 20  # the dry run renders the personal text of this many recipients


class CampaignError(ValueError):
    """A campaign that cannot be made or sent as asked; the message says why."""


# -- making one ----------------------------------------------------------------------------------------------


def create_campaign(session: Session, program: Program, *, name: str, text: str, audience: Mapping[str, Any],
                    now: datetime, kind: str = "message", buttons: Sequence[str] = (),
                    options: Sequence[str] = (), bonus_points: int = 0, created_by: Optional[str] = None,
                    holdout_percent: Optional[int] = None) -> Campaign:
    """A draft campaign. `buttons` are BUTTON_ACTIONS names ("redeem" or "redeem=Use my points" for another
    title); `options` are a poll's answers. The holdout share is the program's unless given."""
    name, text = name.strip(), text.strip()
    if not name or len(name) > 120:
        raise CampaignError("a campaign needs a name of 1-120 characters")
    if not text or len(text) > MAX_TEXT_CHARS:
        raise CampaignError(f"the text must be 1-{MAX_TEXT_CHARS} characters")
    check_fields(text)
    if kind == "poll":
        if buttons:
            raise CampaignError("a poll's buttons are its options")
        titles = [option.strip() for option in options if option.strip()]
        if not 2 <= len(titles) <= MAX_BUTTONS:
            raise CampaignError(f"a poll needs 2-{MAX_BUTTONS} options")
        if len({title.casefold() for title in titles}) != len(titles):
            raise CampaignError("a poll's options must differ")
        stored = [{"title": _title(title)} for title in titles]
    elif kind == "message":
        if options:
            raise CampaignError("only a poll has options")
        if len(buttons) > MAX_BUTTONS:
            raise CampaignError(f"at most {MAX_BUTTONS} buttons")
        stored = [_button(spec) for spec in buttons]
    else:
        raise CampaignError(f"a campaign is a message or a poll, not {kind!r}")
    if isinstance(bonus_points, bool) or not isinstance(bonus_points, int) or bonus_points < 0:
        raise CampaignError("the bonus is a whole number of points, 0 for none")
    if bonus_points and kind == "message" and not stored:
        raise CampaignError("a bonus is credited when the shopper acts: give the message a button")
    audience = _checked_audience(session, program, audience)
    holdout = program.campaigns.holdout_percent if holdout_percent is None else holdout_percent
    if not 0 <= holdout <= 90:
        raise CampaignError("the holdout share is 0-90 %")
    campaign = Campaign(name=name, kind=kind, text=text, buttons=stored, bonus_points=bonus_points,
                        audience=audience, holdout_percent=holdout, status="draft", created_by=created_by,
                        created_at=now)
    session.add(campaign)
    session.flush()
    return campaign


def check_fields(text: str) -> None:
    """Refuse a text naming a personal field that does not exist ({frist_name}) or with broken braces."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as error:
        raise CampaignError(f"the text's braces do not pair up: {error}") from None
    unknown = sorted({name for name in names if name not in PERSONAL_FIELDS})
    if unknown:
        raise CampaignError(f"unknown personal field {{{unknown[0]}}}; the fields are "
                            + ", ".join(f"{{{name}}}" for name in PERSONAL_FIELDS))


def _title(title: str) -> str:
    if len(title) > MAX_TITLE_CHARS:
        raise CampaignError(f"button title {title!r} is longer than {MAX_TITLE_CHARS} characters (Instagram's limit)")
    return title


def _button(spec: str) -> Dict[str, str]:
    action, _, title = spec.partition("=")
    action = action.strip().lower()
    if action not in BUTTON_ACTIONS:
        raise CampaignError(f"unknown button {action!r}; the buttons are {', '.join(BUTTON_ACTIONS)}")
    return {"title": _title(title.strip() or BUTTON_ACTIONS[action][0]), "action": action}


def _checked_audience(session: Session, program: Program, audience: Mapping[str, Any]) -> Dict[str, Any]:
    """{"customer_ids": [...]} or {"segment": "<ref>"} (a built-in key, a saved segment's id or name; its
    members are taken when the campaign is previewed or sent)."""
    ids = audience.get("customer_ids")
    if ids is not None:
        if not ids or not all(isinstance(value, int) and not isinstance(value, bool) for value in ids):
            raise CampaignError("an audience of customers needs their ids")
        return {"customer_ids": sorted(set(ids))}
    ref = str(audience.get("segment") or "").strip()
    if ref:
        try:
            segment = find_segment(session, ref, program=program)
        except UnknownSegment as error:
            raise CampaignError(str(error)) from None
        return {"segment": segment.ref, "segment_name": segment.name}
    raise CampaignError("the audience is a segment or a list of customer ids")


def audience_label(campaign: Campaign) -> str:
    audience = campaign.audience or {}
    if "segment" in audience:
        return f"segment {audience.get('segment_name') or audience['segment']}"
    return f"{len(audience.get('customer_ids') or ())} chosen customers"


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    return campaign


def list_campaigns(session: Session, limit: int = 100) -> List[Campaign]:
    return list(session.execute(select(Campaign).order_by(Campaign.id.desc()).limit(limit)).scalars())


def audience_ids(session: Session, program: Program, campaign: Campaign, now: datetime) -> List[int]:
    """The audience's customers now: the segment's members at `now`, or the chosen ids that still exist."""
    audience = campaign.audience or {}
    if "segment" in audience:
        try:
            segment_filter = resolve_segment(session, audience["segment"], program=program)
        except UnknownSegment as error:
            raise CampaignError(f"the campaign's segment is gone: {error}") from None
        return sorted(session.execute(member_ids(session, segment_filter, now=now, program=program)).scalars())
    ids = audience.get("customer_ids") or []
    found: List[int] = []
    for start in range(0, len(ids), 500):
        found.extend(session.execute(select(Customer.id).where(Customer.id.in_(ids[start:start + 500]))).scalars())
    return sorted(found)


# -- what a customer reads ----------------------------------------------------------------------------------


def personal_fields(session: Session, program: Program, customer: Customer, now: datetime) -> Dict[str, str]:
    """The values of the personal fields for one customer, from the loyalty code the bot's answers use."""
    outlook = expiry_outlook(session, program, customer.id, now)
    expiring = outlook.balance if outlook.expires_at is not None else 0
    when = outlook.expires_at
    return {
        "first_name": customer.first_name or "there",
        "tier": tier_status(session, customer.id, program, now).tier.name,
        "balance": f"{outlook.balance:,}",
        "expiring_points": f"{expiring:,}",
        "expiry_date": f"{when:%B} {when.day}, {when.year}" if when is not None else "no date",
    }


def render_text(session: Session, program: Program, campaign: Campaign, customer: Customer, now: datetime) -> str:
    return campaign.text.format_map(personal_fields(session, program, customer, now))


def button_payload(campaign: Campaign, position: int) -> str:
    """What a button sends back: a poll option's answer, or the message button's own intent with the campaign."""
    if campaign.kind == "poll":
        payload = f"/{POLL_INTENT}" + json.dumps({CAMPAIGN_ENTITY: campaign.id, OPTION_ENTITY: position},
                                                 separators=(",", ":"))
    else:
        intent = BUTTON_ACTIONS[campaign.buttons[position - 1]["action"]][1]
        payload = f"/{intent}" + json.dumps({CAMPAIGN_ENTITY: campaign.id}, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise CampaignError(f"button payload of {len(payload.encode())} bytes: Telegram takes {MAX_PAYLOAD_BYTES}")
    return payload


def outbox_buttons(campaign: Campaign) -> List[Dict[str, str]]:
    return [{"title": button["title"], "payload": button_payload(campaign, position)}
            for position, button in enumerate(campaign.buttons or (), start=1)]


# -- dry run and send ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRecipient:
    """One audience member in a dry run: "send" (now, on `channel`), "wait" (quiet hours, or no reachable chat
    yet: the outbox keeps trying while the message is relevant), "skip" (the outbox would not send) or
    "holdout"; `text` is their personal text for the first PREVIEW_TEXTS recipients."""

    customer_id: int
    email: Optional[str]
    outcome: str
    channel: Optional[str]
    reason: Optional[str]
    text: Optional[str] = None


@dataclass(frozen=True)
class DryRun:
    campaign_id: int
    audience: int
    recipients: Tuple[PlannedRecipient, ...]
    counts: Dict[str, int] = field(default_factory=dict)  # per outcome
    channels: Dict[str, int] = field(default_factory=dict)  # "send" and "wait" per channel


def _outcome(decision: RouteDecision) -> str:
    return {"route": "send", "postpone": "wait", "skip": "skip"}[decision.outcome]


def dry_run(session: Session, program: Program, campaign_id: int, now: datetime,
            channels: Sequence[str] = ("telegram", "instagram", "widget")) -> DryRun:
    """Who would get the campaign now, on which chat, and who would not and why. Writes nothing."""
    campaign = get_campaign(session, campaign_id)
    members = audience_ids(session, program, campaign, now)
    held = {customer_id for customer_id in members if in_holdout(campaign.id, customer_id, campaign.holdout_percent)}
    decisions = preview_routes(session, program.proactive, [m for m in members if m not in held], now, channels)
    emails = _emails(session, members)
    planned: List[PlannedRecipient] = []
    rendered = 0
    for customer_id in members:
        if customer_id in held:
            planned.append(PlannedRecipient(customer_id, emails.get(customer_id), "holdout", None,
                                            f"held out ({campaign.holdout_percent} % of the audience)"))
            continue
        decision = decisions[customer_id]
        outcome = _outcome(decision)
        text = None
        if outcome != "skip" and rendered < PREVIEW_TEXTS:
            text = render_text(session, program, campaign, session.get(Customer, customer_id), now)
            rendered += 1
        planned.append(PlannedRecipient(customer_id, emails.get(customer_id), outcome, decision.channel,
                                        decision.reason, text))
    counts: Dict[str, int] = {}
    by_channel: Dict[str, int] = {}
    for row in planned:
        counts[row.outcome] = counts.get(row.outcome, 0) + 1
        if row.channel and row.outcome in ("send", "wait"):
            by_channel[row.channel] = by_channel.get(row.channel, 0) + 1
    return DryRun(campaign.id, len(members), tuple(planned), counts, by_channel)


def _emails(session: Session, ids: Sequence[int]) -> Dict[int, Optional[str]]:
    found: Dict[int, Optional[str]] = {}
    for start in range(0, len(ids), 500):
        found.update(session.execute(
            select(Customer.id, Customer.email).where(Customer.id.in_(ids[start:start + 500]))).all())
    return found


@dataclass(frozen=True)
class SendReport:
    campaign_id: int
    queued: int
    holdout: int
    already_sent: bool = False


def send_campaign(session: Session, program: Program, campaign_id: int, now: datetime) -> SendReport:
    """Queue one outbox message per audience member outside the holdout and record the split. Once: a second
    send (or a concurrent one) changes nothing. The outbox's scheduler routes and the channels deliver."""
    campaign = session.execute(select(Campaign).where(Campaign.id == campaign_id).with_for_update()).scalar_one_or_none()
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    if campaign.status == "sent":
        counts = _group_counts(session, campaign.id)
        return SendReport(campaign.id, counts.get("messaged", 0), counts.get("holdout", 0), already_sent=True)
    campaign.status, campaign.sent_at = "sent", now  # under the row lock: one sender wins
    session.flush()
    buttons = outbox_buttons(campaign)
    queued = held = 0
    for customer_id in audience_ids(session, program, campaign, now):
        if in_holdout(campaign.id, customer_id, campaign.holdout_percent):
            session.add(CampaignRecipient(campaign_id=campaign.id, customer_id=customer_id, group="holdout",
                                          created_at=now))
            held += 1
            continue
        customer = session.get(Customer, customer_id)
        message = enqueue(session, customer_id, OUTBOX_KIND, render_text(session, program, campaign, customer, now),
                          f"campaign:{campaign.id}:{customer_id}", now,
                          payload={"campaign_id": campaign.id, "buttons": buttons}, expires_at=now + RELEVANCE)
        session.add(CampaignRecipient(campaign_id=campaign.id, customer_id=customer_id, group="messaged",
                                      message_id=message.id, created_at=now))
        queued += 1
    session.flush()
    return SendReport(campaign.id, queued, held)


def _group_counts(session: Session, campaign_id: int) -> Dict[str, int]:
    from sqlalchemy import func

    return dict(session.execute(
        select(CampaignRecipient.group, func.count()).where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.group)).all())


# -- answers and taps ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """What was recorded: the option (its title), and the bonus points credited now (0: none, or already)."""

    campaign_id: int
    option: Optional[int]
    option_title: Optional[str]
    bonus_credited: int
    first: bool  # the customer's first response to this campaign


def record_response(session: Session, program: Program, campaign_id: int, customer_id: int, now: datetime, *,
                    option: Optional[int] = None, typed: Optional[str] = None,
                    channel: Optional[str] = None) -> Response:
    """A messaged customer answered the poll (`option`, 1-based; `typed`: their words) or tapped a message
    button. The answer is kept per customer (a new answer replaces the option); the campaign's bonus is
    credited once per customer whatever is submitted how often (the ledger's key and the response's
    uniqueness both hold under concurrent submits). CampaignError for a campaign the customer was not sent."""
    campaign = get_campaign(session, campaign_id)
    sent_to = session.execute(select(CampaignRecipient.group).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.customer_id == customer_id)).scalar_one_or_none()
    if sent_to != "messaged":
        raise CampaignError(f"campaign {campaign_id} was not sent to customer {customer_id}")
    if campaign.kind == "poll" and (option is None or not 1 <= option <= len(campaign.buttons)):
        raise CampaignError(f"campaign {campaign_id} has no option {option}")
    typed = typed[:255] if typed else None
    response = _response(session, campaign_id, customer_id)
    first = response is None
    if response is None:
        try:
            with session.begin_nested():
                response = CampaignResponse(campaign_id=campaign_id, customer_id=customer_id, option=option,
                                            typed=typed, channel=channel, created_at=now, updated_at=now)
                session.add(response)
                session.flush()
        except IntegrityError:  # the same customer's other submit got there first
            first = False
            response = _response(session, campaign_id, customer_id)
            assert response is not None
    if not first and campaign.kind == "poll" and option != response.option:
        response.option, response.typed, response.updated_at = option, typed, now
    credited = 0
    if campaign.bonus_points and response.bonus_entry_id is None:
        posted = award(session, program, customer_id, Credit(
            "campaign", campaign.bonus_points, f"Bonus: {campaign.name}"[:255],
            f"campaign:{campaign_id}:{customer_id}"), now)
        response.bonus_entry_id = posted.entry.id
        credited = campaign.bonus_points if posted.created else 0
    session.flush()
    title = campaign.buttons[option - 1]["title"] if option and option <= len(campaign.buttons) else None
    return Response(campaign_id, option, title, credited, first)


def _response(session: Session, campaign_id: int, customer_id: int) -> Optional[CampaignResponse]:
    return session.execute(select(CampaignResponse).where(
        CampaignResponse.campaign_id == campaign_id, CampaignResponse.customer_id == customer_id)
    ).scalar_one_or_none()


_WORDS = re.compile(r"[^\w%$€£]+")


def _plain(text: str) -> str:
    return " ".join(_WORDS.split(text.casefold())).strip()


def match_option(titles: Sequence[str], typed: str) -> Optional[int]:
    """The option (1-based) a typed answer names: its number ("2", "#2", "option 2"), its title, or words
    that belong to exactly one title ("the shipping one" → "Free shipping"). None when unclear."""
    said = _plain(typed)
    if not said or len(said) > MAX_TYPED_ANSWER:
        return None
    number = re.fullmatch(r"(?:option |number |no |#)?(\d{1,2})", said)
    if number:
        position = int(number.group(1))
        return position if 1 <= position <= len(titles) else None
    plain = [_plain(title) for title in titles]
    exact = [position for position, title in enumerate(plain, start=1) if title == said]
    if exact:
        return exact[0]
    inside = [position for position, title in enumerate(plain, start=1) if title and title in said]
    if len(inside) == 1:
        return inside[0]
    words = {word for word in said.split() if len(word) >= 4}
    sharing = [position for position, title in enumerate(plain, start=1) if words & set(title.split())]
    return sharing[0] if len(sharing) == 1 else None


def open_poll_answer(session: Session, channel: str, sender_id: str, text: str, now: datetime
                     ) -> Optional[Tuple[int, int]]:
    """(campaign id, option) when the customer of this chat was sent a poll in the last POLL_OPEN (on any of
    their chats) that they have not answered, and `text` names one of its options; else None. Read by index
    (the chat's identity, then the customer's recipient rows), as it runs for typed messages."""
    customer_id = session.execute(select(ChannelIdentity.customer_id).where(
        ChannelIdentity.channel == channel, ChannelIdentity.external_id == sender_id)).scalar_one_or_none()
    if customer_id is None:
        return None
    answered = select(CampaignResponse.id).where(CampaignResponse.campaign_id == Campaign.id,
                                                 CampaignResponse.customer_id == customer_id)
    polls = session.execute(
        select(Campaign)
        .join(CampaignRecipient, CampaignRecipient.campaign_id == Campaign.id)
        .join(OutboundMessage, OutboundMessage.id == CampaignRecipient.message_id)
        .where(CampaignRecipient.customer_id == customer_id, Campaign.kind == "poll",
               OutboundMessage.status.in_(("sent", "delivered")), OutboundMessage.sent_at >= now - POLL_OPEN,
               ~answered.exists())
        .order_by(OutboundMessage.sent_at.desc()).limit(3)
    ).scalars().all()
    for campaign in polls:
        option = match_option([option["title"] for option in campaign.buttons], text)
        if option is not None:
            return campaign.id, option
    return None


def record_tap(session: Session, program: Program, campaign_id: int, customer_id: int, intent: str, now: datetime,
               channel: Optional[str] = None) -> Response:
    """A message button tapped: the button whose action is `intent` (the payload carries only the campaign)."""
    campaign = get_campaign(session, campaign_id)
    position = next((number for number, button in enumerate(campaign.buttons or (), start=1)
                     if BUTTON_ACTIONS.get(button.get("action", ""), ("", ""))[1] == intent), None)
    if campaign.kind != "message" or position is None:
        raise CampaignError(f"campaign {campaign_id} has no {intent} button")
    return record_response(session, program, campaign_id, customer_id, now, option=position, channel=channel)


def responses(session: Session, campaign_id: int) -> List[CampaignResponse]:
    return list(session.execute(select(CampaignResponse).where(CampaignResponse.campaign_id == campaign_id)
                                .order_by(CampaignResponse.id)).scalars())


def customers_who_answered(campaign_id: int, options: Iterable[int]) -> Select:
    """A Select of the ids of customers whose answer to the poll is one of `options` (a segment condition)."""
    return select(CampaignResponse.customer_id).where(CampaignResponse.campaign_id == campaign_id,
                                                      CampaignResponse.option.in_(list(options)))
