"""get_referral_link, referral_status, claim_referral: the advocate's link and progress, the friend's code.

The rules (who is rewarded, fraud) live in bot.advocacy.referrals and the friend's offer in
bot.advocacy.friend_offers; these actions only read who is talking and say what happened."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.asking import is_question
from actions.common import StoreAction, read_config, sender_of, with_store
from actions.loyalty import EARN_BUTTON, guest_text, long_date
from actions.thread import Topic, topic_events
from bot import clock
from bot.advocacy.referrals import (
    ChatClaim, ReferralStats, claim_in_chat, find_code_in_text, referral_code_for, referral_link, referral_stats,
)
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.settings import get_settings
from bot.shared.text import plural
from bot.shop import Shop, get_shop

log = get_logger(__name__)

LINK_BUTTON = {"title": "My referral link", "payload": "/get_referral_link"}
GET_LINK_BUTTON = {"title": "Get my link", "payload": "/get_referral_link"}
STATUS_BUTTON = {"title": "My referrals", "payload": "/referral_status"}
QUIZ_BUTTON = {"title": "Help me choose", "payload": "/start_quiz"}


def offer_terms(program: Program) -> str:
    """What a friend gets and what the advocate gets for it, e.g. "10% off … and you get 500 points …"."""
    earning = program.earning
    minimum = earning.referral_friend_min_order
    first_order = f"first order of {program.money(minimum)} or more" if minimum else "first order"
    return (f"Friends who use it get {earning.referral_friend_percent_off}% off their first order, and you get "
            f"{earning.referral_advocate:,} points when their {first_order} is paid.")


def share_text(program: Program, shop: Shop, link: str) -> str:
    return (f"I love {shop.name} — here's {program.earning.referral_friend_percent_off}% off your first order "
            f"with my link: {link}")


def link_text(program: Program, shop: Shop, name: str, code: str, link: str) -> str:
    return "\n".join([
        f"Here's your personal referral link, {name}:",
        link,
        "",
        f"{offer_terms(program)} Your code is {code} — friends can also type it to me in chat.",
        "",
        "Ready to share:",
        f"“{share_text(program, shop, link)}”",
    ])


def stats_text(program: Program, stats: ReferralStats) -> str:
    if stats.clicks == 0 and stats.friends_joined == 0:
        return ("Nobody has used your referral link yet. Share it with a friend or two. "
                f"{offer_terms(program)}")
    lines = ["Your referrals so far:",
             f"• {stats.clicks:,} {plural('visit', stats.clicks)} through your link",
             f"• {stats.friends_joined:,} {plural('friend', stats.friends_joined)} joined",
             f"• {stats.successful:,} successful {plural('referral', stats.successful)} — "
             f"{stats.points_earned:,} points earned"]
    if stats.pending:
        lines.append(f"• {stats.pending:,} waiting for a first order")
    if stats.in_review:
        lines.append(f"• {stats.in_review:,} being checked by our team — the points follow once it's confirmed")
    if stats.not_rewarded:
        lines.append("Not rewarded:")
        lines.extend(f"• {item.friend}: {item.reason}" for item in stats.not_rewarded)
    return "\n".join(lines)


def friend_terms(program: Program, claim: ChatClaim) -> str:
    """What the friend's offer gives: "10% off your first order of $30 or more"."""
    terms = f"{claim.percent_off}% off your first order"
    if claim.min_order:
        terms += f" of {program.money(claim.min_order)} or more"
    return terms


def friend_offer_text(program: Program, shop: Shop, claim: ChatClaim) -> str:
    """The friend's offer as it stands, for "so what discount do I get?" after the claim."""
    advocate = claim.advocate_name or "your friend"
    if claim.offer_status == "used":
        return (f"Your welcome code {claim.offer_code} from {advocate}'s invitation ({friend_terms(program, claim)}) "
                "has been used on your first order — thank you!")
    if claim.offer_status == "expired":
        return (f"Your welcome code {claim.offer_code} ({friend_terms(program, claim)}) has expired, I'm afraid. "
                "If you haven't ordered yet, ask for a person and our team will help.")
    until = f" It's valid until {long_date(claim.expires_at)}." if claim.expires_at else ""
    return (f"With {advocate}'s invitation you get {friend_terms(program, claim)}. Your code is {claim.offer_code}: "
            f"enter it at checkout on {shop.store_url} in the discount code box.{until}")


def claim_text(program: Program, shop: Shop, claim: ChatClaim) -> str:
    advocate = claim.advocate_name or "Your friend"
    if claim.status in ("claimed", "already_claimed"):
        terms = friend_terms(program, claim)
        until = f", valid until {long_date(claim.expires_at)}" if claim.expires_at else ""
        if claim.status == "already_claimed" and claim.offer_status == "used":
            return (f"You've already accepted {advocate}'s invitation, and your welcome code {claim.offer_code} "
                    "has been used on your first order — thank you! Ask me for your own referral link to invite friends.")
        if claim.status == "already_claimed" and claim.offer_status == "expired":
            return (f"You've already accepted {advocate}'s invitation; your welcome code {claim.offer_code} has "
                    "expired, I'm afraid. If you haven't ordered yet, ask for a person and our team will help.")
        if claim.status == "already_claimed":
            return (f"You've already accepted {advocate}'s invitation — your code for {terms} is still "
                    f"{claim.offer_code}{until}.")
        return (f"Welcome to {shop.name}! {advocate} invited you, so here's {terms}: {claim.offer_code}{until}. "
                f"Enter it at checkout on {shop.store_url}. I can help you choose, answer questions about "
                f"delivery and returns, and more — just ask.")
    if claim.status == "own_code":
        return ("That's your own referral code — share it with friends, and you'll earn "
                f"{program.earning.referral_advocate:,} points when their first order is paid.")
    if claim.status == "other_advocate":
        return ("You've already accepted an invitation from another friend. Each new customer can use one "
                "invitation, so this code can't be added as well.")
    if claim.status == "not_first_order":
        return ("Referral offers are for a first order, and you've already ordered with us — thank you! "
                "You can invite friends yourself: ask me for your referral link.")
    if claim.status == "blocked":
        return ("Sorry — I can't accept this invitation. If you think that's a mistake, ask for a person and "
                "our team will look into it.")
    return ("I couldn't find that referral code. Please check it with your friend (it's 10 letters and numbers) "
            "or open the link they sent you.")


def referring_explained(program: Program) -> str:
    """How referring works, for a shopper who asks (no link is made until they ask for it)."""
    return (f"Yes — every member has a personal referral link to share. {offer_terms(program)} "
            "Tap the button and I'll give you yours, with a message ready to paste.")


def friend_code_explained(program: Program, code: Optional[str]) -> str:
    """What a friend's code does, for a shopper who asks about one (nothing is claimed until they use it)."""
    minimum = program.earning.referral_friend_min_order
    terms = f"{program.earning.referral_friend_percent_off}% off their first order"
    terms += f" of {program.money(minimum)} or more" if minimum else ""
    if code:
        return (f"A friend's referral code gives a new customer {terms}, once. "
                f"Want me to apply {code} to this chat? Tap the button.")
    return (f"Members share a personal referral link: {offer_terms(program)} "
            f"If a friend invited you, send me their code and you get {terms}.")


@dataclass(frozen=True)
class LinkView:
    name: Optional[str]  # None: a guest
    code: str = ""
    link: str = ""


class ActionReferralLink(StoreAction):
    def name(self) -> Text:
        return "action_referral_link"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        program, shop = read_config(get_program), read_config(get_shop)
        base_url = get_settings().public_base_url
        if is_question(tracker.latest_message.get("text") or ""):
            # "can I refer my friends?": how it works and the offer; no referral code is made yet.
            log.info("referral.explained")
            dispatcher.utter_message(text=referring_explained(program), buttons=[GET_LINK_BUTTON, STATUS_BUTTON])
            return []

        def work(session: Session) -> LinkView:
            customer = customer_for_sender(session, channel, sender_id)
            if customer is None:
                return LinkView(None)
            code = referral_code_for(session, customer.id, clock.now())
            return LinkView(customer.display_name, code.code, referral_link(base_url, code.code))

        view = await with_store(work, write=True)
        if view.name is None:
            dispatcher.utter_message(text=guest_text(program, shop, "your referral link"))
            return topic_events(Topic.GUEST)
        dispatcher.utter_message(text=link_text(program, shop, view.name, view.code, view.link),
                                 buttons=[STATUS_BUTTON, EARN_BUTTON])
        return []


class ActionReferralStatus(StoreAction):
    def name(self) -> Text:
        return "action_referral_status"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        program, shop = read_config(get_program), read_config(get_shop)

        def work(session: Session) -> Tuple[bool, Optional[ReferralStats]]:
            customer = customer_for_sender(session, channel, sender_id)
            if customer is None:
                return False, None
            return True, referral_stats(session, customer.id)

        member, stats = await with_store(work)
        if not member:
            dispatcher.utter_message(text=guest_text(program, shop, "your referrals"))
            return topic_events(Topic.GUEST)
        if stats is None:
            dispatcher.utter_message(
                text=f"You haven't shared a referral link yet. {offer_terms(program)}", buttons=[LINK_BUTTON])
        else:
            dispatcher.utter_message(text=stats_text(program, stats), buttons=[LINK_BUTTON])
        return []


class ActionClaimReferral(StoreAction):
    """A friend's code: from Telegram's deep link (the referral_code entity) or typed in the message."""

    def name(self) -> Text:
        return "action_claim_referral"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        program, shop = read_config(get_program), read_config(get_shop)
        from_link = next(tracker.get_latest_entity_values("referral_code"), None)
        text = tracker.latest_message.get("text") or ""
        typed = str(from_link) if from_link else find_code_in_text(text)
        if not from_link and is_question(text):
            # "can I refer my friends" reads close to "my friend referred me": both sides, and the offer. A code
            # in a question is applied only from the button (the bare code, read as a typed code).
            log.info("referral.claim_explained", code=bool(typed))
            buttons = [{"title": f"Use code {typed}", "payload": typed}] if typed else [GET_LINK_BUTTON]
            dispatcher.utter_message(text=friend_code_explained(program, typed), buttons=buttons)
            return []
        if not typed:
            dispatcher.utter_message(text="Great — send me your friend's referral code (10 letters and numbers), "
                                          "or open the link they shared with you.")
            return []
        source = "telegram" if from_link else "chat"

        def work(session: Session) -> ChatClaim:
            return claim_in_chat(session, program, typed, channel, sender_id, source, clock.now())

        claim = await with_store(work, write=True)
        log.info("referral.claim", status=claim.status, source=source, channel=channel)
        buttons = [QUIZ_BUTTON, EARN_BUTTON] if claim.status == "claimed" else []
        if claim.status in ("own_code", "not_first_order"):
            buttons = [LINK_BUTTON]
        dispatcher.utter_message(text=claim_text(program, shop, claim), buttons=buttons)
        if claim.status in ("claimed", "already_claimed"):
            return topic_events(Topic.REFERRAL_CLAIM, claim.offer_code)  # "so what discount do I get?"
        return []
