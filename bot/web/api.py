"""The store API's handlers: the store's back-end reports orders, customers and actions, checks and uses codes
at checkout and asks for chat link codes. Each handler reads its body (bot/web/payloads.py), calls the one
service for its use case in one transaction, and answers JSON. Routes, bodies and errors: the README's
"Store API" section."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any, Awaitable, Callable, Dict, Optional

from aiohttp import web
from sqlalchemy.orm import Session

from bot import checkout, clock
from bot.advocacy.fingerprints import address_hash, fingerprint_key, ip_hash
from bot.advocacy.referrals import ReferralOutcome
from bot.db import RETRY_AFTER_SECONDS
from bot.identity import CustomerFacts, CustomerRef, find_customer
from bot.identity.linking import issue_link_code
from bot.log import get_logger
from bot.loyalty.earning import ACTIONS, Credit, award, credit_for, custom_credit
from bot.loyalty.ledger import balance
from bot.loyalty.program import Program
from bot.loyalty.rewards import CodeRefused
from bot.membership import Joining, join
from bot.models import Customer, FriendOffer, Order, RewardCode
from bot.order_events import (
    Fulfilment, PaidOrder, Refund, TakenBack, record_cancellation, record_fulfilment, record_paid, record_refund,
)
from bot.web import payloads
from bot.web.errors import ApiError, bad_request, code_refused
from bot.app_context import DATABASE, SETTINGS, in_executor, in_store

log = get_logger(__name__)

BUILT_IN_ACTIONS = tuple(action for action in ACTIONS if action != "custom")
MAX_DISCOUNT_CODES = 10


@dataclass(frozen=True)
class Outcome:
    """What a write request did: `created` False means a replay that changed nothing."""

    created: bool
    body: Dict[str, Any]

    def response(self) -> web.Response:
        return web.json_response({**self.body, "created": self.created}, status=201 if self.created else 200)


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


READY_TIMEOUT_SECONDS = 2.0


async def ready(request: web.Request) -> web.Response:
    """Readiness for the load balancer: 200 when the database answers, 503 otherwise; and whether this
    replica runs the scheduled jobs (holds the jobs lease), stands by, or has them off."""
    from bot.web.scheduler import JOBS_LEASE

    app = request.app

    def ping() -> None:
        with app[DATABASE].engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    try:
        await asyncio.wait_for(in_executor(app, ping), READY_TIMEOUT_SECONDS)
        database = "ok"
    except Exception as error:  # noqa: BLE001 - the answer is the report
        database = f"unavailable ({type(error).__name__})"
    lease = app.get(JOBS_LEASE)
    jobs = "off" if lease is None else ("runner" if lease.held else "standby")
    ok = database == "ok"
    return web.json_response({"status": "ready" if ok else "unavailable", "database": database, "jobs": jobs},
                             status=200 if ok else 503, headers=None if ok else {"Retry-After": str(RETRY_AFTER_SECONDS)})


# --- orders ------------------------------------------------------------------------------------------


async def post_order(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    event = body.get("event")
    record = _ORDER_EVENTS.get(event) if isinstance(event, str) else None
    if record is None:
        raise bad_request(f"event must be one of {', '.join(_ORDER_EVENTS)}")
    outcome = await record(request, body)
    log.info("api.order", order_event=event, order_id=outcome.body["order_id"], created=outcome.created,
             points_awarded=outcome.body.get("points_awarded"), points_reversed=outcome.body.get("points_reversed"),
             referral_status=outcome.body.get("referral", {}).get("status"))
    return outcome.response()


async def _paid(request: web.Request, body: Dict[str, Any]) -> Outcome:
    key = fingerprint_key(request.app[SETTINGS])
    customer = payloads.customer_ref(body)
    order_id = payloads.identifier(body, "order_id")
    total = payloads.amount(body, "total")
    currency = payloads.currency(body)
    placed_at = payloads.moment(body, "placed_at", clock.now())
    lines = payloads.order_lines(body)
    discount_codes = payloads.text_list(body, "discount_codes", max_items=MAX_DISCOUNT_CODES, max_length=64)
    referral_code = payloads.optional_text(body, "referral_code", max_length=32)
    address = address_hash(payloads.shipping_address(body), key)
    network = ip_hash(payloads.ip_address(body, "client_ip"), key)

    def record(session: Session, program: Program) -> Outcome:
        customer_id = _customer(session, customer).id
        paid = record_paid(session, program, PaidOrder(
            order_id, customer_id, total, placed_at, currency=currency, lines=lines, discount_codes=discount_codes,
            referral_code=referral_code, shipping_address_hash=address, ip_hash=network))
        return Outcome(paid.created, {
            **_order_view(paid.order),
            "points_awarded": paid.points_awarded,
            "balance": balance(session, customer_id),
            "tier": session.get(Customer, customer_id).tier_name,
            **({"referral": _referral_view(paid.referral)} if paid.referral is not None else {}),
        })

    return await in_store(request, record, write=True)


async def _refunded(request: web.Request, body: Dict[str, Any]) -> Outcome:
    refund = Refund(
        order_id=payloads.identifier(body, "order_id"),
        refund_id=payloads.identifier(body, "refund_id"),
        amount=payloads.amount(body, "amount"),
        currency=payloads.currency(body),
    )
    return await in_store(request, lambda session, program: _take_back_outcome(
        session, record_refund(session, program, refund)), write=True)


async def _cancelled(request: web.Request, body: Dict[str, Any]) -> Outcome:
    order_id = payloads.identifier(body, "order_id")
    return await in_store(request, lambda session, program: _take_back_outcome(
        session, record_cancellation(session, program, order_id)), write=True)


async def _fulfilled(request: web.Request, body: Dict[str, Any]) -> Outcome:
    fulfilment = Fulfilment(
        order_id=payloads.identifier(body, "order_id"),
        fulfilled_at=payloads.moment(body, "fulfilled_at", clock.now()),
        tracking=payloads.tracking(body),
    )

    def record(session: Session, _program: Program) -> Outcome:
        fulfilled = record_fulfilment(session, fulfilment)
        order = fulfilled.order
        return Outcome(fulfilled.created, {
            **_order_view(order), "fulfilled_at": order.fulfilled_at.isoformat(),
            "tracking": {"company": order.tracking_company, "number": order.tracking_number,
                         "url": order.tracking_url},
        })

    return await in_store(request, record, write=True)


_ORDER_EVENTS: Dict[str, Callable[[web.Request, Dict[str, Any]], Awaitable[Outcome]]] = {
    "paid": _paid, "refunded": _refunded, "cancelled": _cancelled, "fulfilled": _fulfilled,
}


def _take_back_outcome(session: Session, taken: TakenBack) -> Outcome:
    return Outcome(taken.created, {
        **_order_view(taken.order),
        "refund_id": taken.refund.external_id,
        "amount": _money(taken.refund.amount),
        "points_reversed": taken.points_reversed,
        "points_written_off": taken.points_written_off,
        "balance": balance(session, taken.order.customer_id),
        **({"referral": _referral_view(taken.referral)} if taken.referral is not None else {}),
    })


def _referral_view(outcome: ReferralOutcome) -> Dict[str, Any]:
    view = {"id": outcome.referral_id, "status": outcome.status, "reason": outcome.reason,
            "advocate_points": outcome.advocate_points}
    if outcome.offer_code is not None:
        view["offer_code"] = outcome.offer_code
    return view


def _order_view(order: Order) -> Dict[str, Any]:
    return {
        "order_id": order.external_id,
        "customer_id": order.customer_id,
        "status": order.status,
        "total": _money(order.total),
        "refunded_total": _money(order.refunded_total),
        "currency": order.currency,
        "points_earned": order.points_earned,
        "placed_at": order.placed_at.isoformat(),
    }


# --- points ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointsRequest:
    customer: CustomerRef
    action: str
    reference: Optional[str]
    idempotency_key: Optional[str]
    at: datetime


async def post_points(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    points = PointsRequest(
        customer=payloads.customer_ref(body),
        action=payloads.text(body, "action", max_length=64),
        reference=payloads.optional_text(body, "reference", max_length=200),
        idempotency_key=payloads.optional_text(body, "idempotency_key", max_length=200),
        at=clock.now(),
    )
    outcome = await in_store(request, partial(_credit, wanted=points), write=True)
    log.info("api.points", action=points.action, customer_id=outcome.body["customer_id"], created=outcome.created,
             points_awarded=outcome.body["points_awarded"])
    return outcome.response()


def _credit(session: Session, program: Program, wanted: PointsRequest) -> Outcome:
    customer = _customer(session, wanted.customer)
    credit = _credit_for(program, customer.id, wanted)
    posted = award(session, program, customer.id, credit, wanted.at)
    return Outcome(posted.created, {
        "customer_id": customer.id,
        "action": wanted.action,
        "points_awarded": credit.points if posted.created else 0,
        "balance": balance(session, customer.id),
    })


def _credit_for(program: Program, customer_id: int, wanted: PointsRequest) -> Credit:
    # Built-in rules first: a custom action may not redefine what a birthday is worth.
    if wanted.action in BUILT_IN_ACTIONS:
        return credit_for(program, customer_id, wanted.action, wanted.reference, wanted.at)
    if wanted.action in program.earning.custom_actions:
        if wanted.idempotency_key is None:
            raise bad_request(f"{wanted.action} is a custom action: idempotency_key is required "
                              "(what makes this occasion unique, so a retry is not paid twice)")
        return custom_credit(program, customer_id, wanted.action, wanted.idempotency_key)
    known = ", ".join([*BUILT_IN_ACTIONS, *sorted(program.earning.custom_actions)])
    raise ApiError(422, "unknown_action", f"unknown action {wanted.action!r}; expected one of {known}")


# --- customers ---------------------------------------------------------------------------------------


async def post_customer(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    email = payloads.text(body, "email", max_length=320).lower()
    if "@" not in email:
        raise bad_request(f"email {email!r} is not an email address")
    joining = Joining(
        CustomerFacts(
            email=email,
            store_id=payloads.optional_identifier(body, "external_id"),
            first_name=payloads.optional_text(body, "first_name", max_length=100),
            last_name=payloads.optional_text(body, "last_name", max_length=100),
            birthday=payloads.birthday(body),
        ),
        referral_code=payloads.optional_text(body, "referral_code", max_length=32),
        ip_hash=ip_hash(payloads.ip_address(body, "client_ip"), fingerprint_key(request.app[SETTINGS])),
    )

    def record(session: Session, program: Program) -> Outcome:
        """A new member with their signup points, or the member this email already is."""
        joined = join(session, program, joining)
        view = {**_customer_view(session, joined.customer), "points_awarded": joined.signup_points}
        if joined.referral is not None:
            view["referral"] = _referral_view(joined.referral)
        return Outcome(joined.created, view)

    outcome = await in_store(request, record, write=True)
    log.info("api.customer", customer_id=outcome.body["id"], created=outcome.created)
    return outcome.response()


def _customer_view(session: Session, customer: Customer) -> Dict[str, Any]:
    return {
        "id": customer.id,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "external_id": customer.external_id,
        "balance": balance(session, customer.id),
        "tier": customer.tier_name,
    }


def _customer(session: Session, ref: CustomerRef) -> Customer:
    customer = find_customer(session, ref)
    if customer is None:
        raise ApiError(404, "unknown_customer", f"no customer with {ref.key} {ref.value!r}")
    return customer


# --- chat linking ------------------------------------------------------------------------------------


async def post_link_token(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    ref = payloads.customer_ref(body)

    def issue(session: Session, _program: Program) -> Dict[str, Any]:
        customer = _customer(session, ref)
        issued = issue_link_code(session, customer.id, clock.now())
        return {
            "customer_id": customer.id,
            "code": issued.code,
            "expires_at": issued.expires_at.isoformat(),
            "telegram_start_parameter": issued.deep_link_parameter,
        }

    view = await in_store(request, issue, write=True)
    log.info("api.link_token", customer_id=view["customer_id"])  # never the code
    return web.json_response(view, status=201)


# --- reward codes ------------------------------------------------------------------------------------


async def get_reward_code(request: web.Request) -> web.Response:
    typed = request.match_info["code"][:64]
    query = request.query
    order_total = payloads.basket_total(query["order_total"], "order_total") if "order_total" in query else None
    currency = payloads.optional_currency(dict(query))
    customer = payloads.query_customer(query)
    now = clock.now()

    def look_up(session: Session, program: Program) -> Dict[str, Any]:
        """A code's view with "valid" and, when refused, the reason; an unknown code is 404."""
        try:
            found = checkout.check_code(session, program, typed, order_total=order_total, currency=currency,
                                        customer_id=_known_customer_id(session, customer), now=now)
        except CodeRefused as refused:
            if refused.found is None:
                raise code_refused(CodeRefused(typed, "unknown", f"no reward code {typed!r}")) from None
            return {**_checkout_view(refused.found), "valid": False, "reason": refused.reason,
                    "detail": str(refused)}
        return {**_checkout_view(found), "valid": True}

    return web.json_response(await in_store(request, look_up, write=False))


async def post_reward_code(request: web.Request) -> web.Response:
    typed = request.match_info["code"][:64]
    body = await payloads.json_object(request)
    if body.get("action") != "use":
        raise bad_request('action must be "use"')
    order_id = payloads.identifier(body, "order_id")
    order_total = None if body.get("order_total") is None else payloads.basket_total(body["order_total"], "order_total")
    currency = payloads.optional_currency(body)
    customer = payloads.customer_ref(body) if body.get("customer") is not None else None

    def use(session: Session, program: Program) -> Dict[str, Any]:
        return _checkout_view(checkout.use_code(
            session, program, typed, order_id, order_total=order_total, currency=currency,
            customer_id=_known_customer_id(session, customer), now=clock.now()))

    view = await in_store(request, use, write=True)
    log.info("api.code_used", order_id=order_id, customer_id=view["customer_id"], friend_offer=view["friend_offer"])
    return web.json_response(view)


def _known_customer_id(session: Session, ref: Optional[CustomerRef]) -> Optional[int]:
    """The named customer's id; None when none was named or the store names someone we do not know yet (a
    new customer at their first checkout)."""
    customer = find_customer(session, ref) if ref is not None else None
    return customer.id if customer is not None else None


def _checkout_view(found: Any) -> Dict[str, Any]:
    return _offer_view(found) if isinstance(found, FriendOffer) else _code_view(found)


def _code_view(code: RewardCode) -> Dict[str, Any]:
    return {
        "friend_offer": False,
        "code": code.code,
        "status": code.status,
        "reward_id": code.reward_id,
        "title": code.title,
        "kind": code.kind,
        "value": _money(code.value),
        "product_sku": code.product_sku,
        "currency": code.currency,
        "min_order": _money(code.min_order),
        "customer_id": code.customer_id,
        "issued_at": code.issued_at.isoformat(),
        "expires_at": code.expires_at.isoformat(),
        "used_at": code.used_at.isoformat() if code.used_at else None,
        "used_order_ref": code.used_order_ref,
    }


def _offer_view(offer: FriendOffer) -> Dict[str, Any]:
    """A friend offer in the reward code's shape: a percent off, for whoever uses it first."""
    return {
        "friend_offer": True,
        "code": offer.code,
        "status": offer.status,
        "reward_id": None,
        "title": f"{offer.percent_off}% off a first order",
        "kind": "percent_off",
        "value": _money(Decimal(offer.percent_off)),
        "product_sku": None,
        "currency": None,
        "min_order": _money(offer.min_order),
        "customer_id": offer.used_by_customer_id,
        "issued_at": offer.issued_at.isoformat(),
        "expires_at": offer.expires_at.isoformat(),
        "used_at": offer.used_at.isoformat() if offer.used_at else None,
        "used_order_ref": offer.used_order_ref,
    }


# --- helpers -----------------------------------------------------------------------------------------


def _money(amount: Optional[Decimal]) -> Optional[str]:
    return None if amount is None else f"{amount:.2f}"
