"""Where is my order: the shopper's order (the one they name, the only one on its way, or the latest; a choice
of buttons when several are on their way) with its real state from what the store reported — paid and being
prepared, shipped with the carrier, tracking number and link, refunded in part or whole, cancelled — and when
that changed. A guest links the chat, or names the order with its email (both must match)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.common import StoreAction, sender_of, with_store
from actions.history import short_date
from bot import clock
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.order_status import (
    OrderStatus, customer_order, email_in, guest_order, order_number_in, recent_orders,
)
from bot.shop import Shop, get_shop

log = get_logger(__name__)

# A parcel shipped longer ago than this, or an order unshipped this long, is late: the shopper is offered a person.
DELIVERY_WINDOW = timedelta(days=10)
SHIPPING_WINDOW = timedelta(days=14)
NOT_ARRIVED_WORDS = ("arrive", "receive", "recieve", "late", "never came", "didn't come", "didnt come",
                     "hasn't come", "hasnt come", "still waiting", "not here", "never got", "didn't get", "didnt get")
HANDOFF_TITLE = "Yes, get a person"


@dataclass
class OrderAnswer:
    """What one turn read from the store, in one transaction."""

    program: Program
    shop: Shop
    linked: bool
    name: Optional[str] = None
    order: Optional[OrderStatus] = None  # the order to tell about
    asked: Optional[str] = None  # the number the shopper named
    choices: List[OrderStatus] = field(default_factory=list)  # several on their way: which one?
    recent: List[OrderStatus] = field(default_factory=list)


class ActionOrderStatus(StoreAction):
    def name(self) -> Text:
        return "action_order_status"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        text = tracker.latest_message.get("text") or ""
        number = next(tracker.get_latest_entity_values("order_number"), None) or order_number_in(text)
        number = str(number).strip().lstrip("#") if number else None
        email = email_in(text)
        channel, sender = sender_of(tracker)
        now = clock.now()

        def read(session: Session) -> OrderAnswer:
            program, shop = get_program(), get_shop()
            customer = customer_for_sender(session, channel, sender)
            if customer is None:
                found = guest_order(session, number, email) if number and email else None
                return OrderAnswer(program, shop, False, order=found, asked=number)
            answer = OrderAnswer(program, shop, True, name=customer.first_name, asked=number,
                                 recent=recent_orders(session, customer.id))
            if number:
                answer.order = customer_order(session, customer.id, number)
                return answer
            on_the_way = [order for order in answer.recent if order.is_open(now)]
            if len(on_the_way) > 1:
                answer.choices = on_the_way
            else:
                answer.order = on_the_way[0] if on_the_way else (answer.recent[0] if answer.recent else None)
            return answer

        answer = await with_store(read)
        reply = _reply(answer, number, email, text, now)
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons or None)
        log.info("order_status.answered", linked=answer.linked, named=bool(number), found=answer.order is not None,
                 choices=len(answer.choices), offered_person=reply.offered_person)
        return []


@dataclass
class Reply:
    text: str
    buttons: List[Dict[str, str]] = field(default_factory=list)
    offered_person: bool = False


def _reply(answer: OrderAnswer, number: Optional[str], email: Optional[str], said: str, now: datetime) -> Reply:
    program, shop = answer.program, answer.shop
    if not answer.linked:
        if answer.order is not None:
            return _about(answer.order, program, said, now)
        if number and email:
            # The same words whether the number exists or not: only number and email together prove anything.
            return Reply(f"I couldn't find an order #{number} placed with that email address. Please check both "
                         f"(they're on your order confirmation email), or link your account: get a link code on "
                         f"your account page ({shop.account_url}) and send it to me here.")
        if number:
            return Reply(f"To look up order #{number} I also need the email address you ordered with — send both "
                         f"together, like \"#{number} you@example.com\". Or link your account: get a link code on "
                         f"your account page ({shop.account_url}) and send it to me here.")
        return Reply(f"I can't see an account linked to this chat yet, so I can't look up your orders. Get a link "
                     f"code on your account page ({shop.account_url}) and send it to me here — or send me your order "
                     f"number and the email you ordered with, together (like \"#1042 you@example.com\").")
    if not answer.recent:
        who = f"{answer.name}, I" if answer.name else "I"
        return Reply(f"{who} don't see any orders on your account yet. Once you've ordered, ask me here and I'll "
                     f"tell you where it is.")
    if answer.choices:
        you = f"{answer.name}, you" if answer.name else "You"
        listed = ", ".join(f"#{order.number} ({short_date(order.placed_at, now)})" for order in answer.choices)
        return Reply(f"{you} have {len(answer.choices)} orders on their way: {listed}. Which one shall I check?",
                     [_order_button(order, now) for order in answer.choices])
    if answer.order is None:
        listed = ", ".join(f"#{order.number} ({short_date(order.placed_at, now)})" for order in answer.recent[:3])
        return Reply(f"I can't find an order #{answer.asked} on your account. Your latest orders: {listed}.",
                     [_order_button(order, now) for order in answer.recent[:3]])
    return _about(answer.order, program, said, now)


def _order_button(order: OrderStatus, now: datetime) -> Dict[str, str]:
    return {"title": f"Order #{order.number} · {short_date(order.placed_at, now)}",
            "payload": f'/order_status{{"order_number": "{order.number}"}}'}


def _about(order: OrderStatus, program: Program, said: str, now: datetime) -> Reply:
    """One order's state in words, the tracking link as a button, and a person offered when it is late."""
    money = lambda amount: _money(program, amount)  # noqa: E731
    head = f"Order #{order.number} ({money(order.total)}, placed {short_date(order.placed_at, now)})"
    buttons: List[Dict[str, str]] = []
    if order.status == "cancelled":
        when = f" on {short_date(order.refunded_at, now)}" if order.refunded_at else ""
        refunded = f" — {money(order.refunded_total)} was refunded to you" if order.refunded_total > 0 else ""
        return Reply(f"{head} was cancelled{when}{refunded}.")
    if order.status == "refunded":
        when = f" on {short_date(order.refunded_at, now)}" if order.refunded_at else ""
        return Reply(f"{head} was refunded in full ({money(order.refunded_total)}){when}.")
    if order.shipped:
        assert order.fulfilled_at is not None
        carrier = f" with {order.tracking_company}" if order.tracking_company else ""
        parts = [f"{head} has shipped{carrier} — it left us on {short_date(order.fulfilled_at, now)}."]
        if order.tracking_number:
            parts.append(f"Tracking number: {order.tracking_number}.")
        if order.tracking_url:
            parts.append(f"Follow it here: {order.tracking_url}")
            buttons.append({"title": "Track my parcel", "url": order.tracking_url, "type": "web_url"})
        if not order.tracking_number and not order.tracking_url:
            parts.append("The store didn't send a tracking number for it.")
    else:
        parts = [f"{head} is paid and being prepared — it hasn't shipped yet. I'll have the tracking details "
                 f"as soon as it leaves us."]
    if order.status == "partially_refunded" and order.refunded_total > 0:
        when = f" on {short_date(order.refunded_at, now)}" if order.refunded_at else ""
        parts.append(f"{money(order.refunded_total)} of it was refunded{when}.")
    if order.changed_at.date() not in (order.placed_at.date(), (order.fulfilled_at or order.placed_at).date()):
        parts.append(f"Last update: {short_date(order.changed_at, now)}.")
    reply = Reply(" ".join(parts), buttons)
    if _says_not_arrived(said) and _late(order, now):
        reply.text += ("\nThat's longer than it should take, sorry. Shall I get a person from our team to look "
                       "into it? They'll see this order.")
        # The order goes with the request (actions/handoff.py handoff_reason): the team sees which one.
        reply.buttons.append({"title": HANDOFF_TITLE,
                              "payload": f'/human_handoff{{"order_number": "{order.number}"}}'})
        reply.offered_person = True
    return reply


def _says_not_arrived(text: str) -> bool:
    lowered = (text or "").lower().replace("’", "'")
    return any(word in lowered for word in NOT_ARRIVED_WORDS)


def _late(order: OrderStatus, now: datetime) -> bool:
    if order.fulfilled_at is not None:
        return now - order.fulfilled_at > DELIVERY_WINDOW
    return now - order.placed_at > SHIPPING_WINDOW


def _money(program: Program, amount: Decimal) -> str:
    return f"{program.currency_symbol}{amount:,.2f}"
