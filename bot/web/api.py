"""The store API: the store's backend reports orders and actions, and checks reward codes at checkout.

Every /api/ route needs `Authorization: Bearer <STORE_API_TOKEN>`; with no token set the API is off
(503). Bodies are JSON objects of at most MAX_BODY_BYTES. One request is one transaction.

| route                             | does                                      | answers                            |
|-----------------------------------|-------------------------------------------|------------------------------------|
| GET  /health                      | liveness (no token)                       | 200 {"status": "ok"}               |
| POST /api/orders  event=paid      | record a paid order, award its points     | 201 points_awarded, balance        |
| POST /api/orders  event=refunded  | take back the refund's share of points    | 201 points_reversed, _written_off  |
|                                   | (and a referral it no longer earns)       |                                    |
| POST /api/orders  event=cancelled | take back what the order still holds      | 201 as refunded                    |
| POST /api/orders  event=fulfilled | the order shipped (review requests count  | 201; again: 200 created false      |
|                                   | from it)                                  |                                    |
| POST /api/points                  | credit an earning rule or custom action   | 201 points_awarded, balance        |
| POST /api/customers               | a new member (signup points) or existing  | 201 new; 200 existing              |
| GET  /api/reward-codes/{code}     | may the store honour it (for a basket);   | 200 valid true/false + reason      |
|                                   | also a friend offer code FRIEND-XXXX-XXXX |                                    |
| POST /api/reward-codes/{code}     | mark it used for an order                 | 200 (again for that order: 200)    |
| POST /api/link-tokens             | a one-time code linking a chat to the     | 201 code, expires_at,              |
|                                   | customer (account page shows it)          | telegram_start_parameter           |
| GET  /r/{code}                    | an advocate's link (no token): records    | 302 to the store with              |
|                                   | the click, issues the friend offer        | ?discount=FRIEND-…&ref=<code>      |
|                                   | (bot/web/redirects.py)                    |                                    |

A replay (same order, refund, idempotency key) changes nothing and answers 200 with "created": false.

Bodies (`?` optional):
  paid       {"event": "paid", "order_id": "1001", "customer": {"id": 5} | {"email": "…"} | {"external_id": "…"},
              "total": "59.00", "currency": "USD", "placed_at"?: "2026-06-15T10:00:00+00:00",
              "lines"?: [{"sku"?, "title", "quantity", "unit_price"}],
              "discount_codes"?: ["FRIEND-K7QM-2XDA", …] (≤ 10, each ≤ 64 chars), "referral_code"?: "K7QM2XDA9P",
              "shipping_address"?: {"address1", "address2", "city", "province", "zip", "country"} | "one line",
              "client_ip"?: "203.0.113.7"}
             Address and IP are kept only as keyed hashes (referral fraud rules). A new order that a friend
             offer code, a referral code or the customer's earlier referral points at answers with
             "referral": {"id", "status": joined|review|rewarded|rejected, "reason", "advocate_points"}.
  fulfilled  {"event": "fulfilled", "order_id", "fulfilled_at"?: now}; the first fulfilment counts
  refunded   {"event": "refunded", "order_id", "refund_id", "amount", "currency"}
  cancelled  {"event": "cancelled", "order_id"}
             When the order was a friend's rewarded (or held) first order and no longer qualifies (cancelled,
             refunded in full, or below the program's minimum after refunds), the referral is rejected and the
             advocate's points are taken back; the answer then carries "referral": {"id", "status": "rejected",
             "reason", "advocate_points"}.
  points     {"customer", "action", "reference"?, "idempotency_key"?}; action: signup, birthday,
             social_follow (reference: network), review_text / review_photo / review_video (reference:
             review id), quiz_completion (reference: quiz id), or one of the program's
             earning.custom_actions (idempotency_key required: what makes one occasion unique)
  customers  {"email", "first_name"?, "last_name"?, "external_id"?, "birthday"?: "1990-04-23",
              "referral_code"?, "client_ip"?}; a new customer with a referral code answers with "referral":
              {"id", "status", "reason", "advocate_points", "offer_code"} (id null: unknown code; an existing
              customer's code is ignored)
  code use   {"action": "use", "order_id", "order_total"?, "currency"?, "customer"?}; GET takes
             ?order_total=&currency= and, for friend offers, ?customer_id= or ?customer_email=. A friend offer
             is refused with reason "not_first_order" for a customer who already ordered or used one, and
             "own_code" for the advocate (or their other account: the same email once case, dots and +tags
             are ignored); an unknown customer is a new one.
  link token {"customer"}; the code is single use and expires in 15 minutes; a new one replaces the old
Amounts are strings ("59.00") or JSON numbers, at most two decimals; times are ISO-8601 with a zone.

Errors are {"error": code, "detail": text}: 400 malformed JSON or wrong types; 401 missing or wrong
token; 404 unknown customer, order or code; 409 the same id with different facts, or a code already
used ("reason": "used"); 410 a code expired or cancelled; 413 body too large; 422 a rule refuses
(impossible amount, other currency, refund beyond the order, basket below the code's minimum);
503 API off. Code refusals also carry "code", "valid": false and "reason".
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.fingerprints import address_hash, fingerprint_key, ip_hash
from bot.advocacy.friend_offers import check_friend_offer, find_friend_offer, is_friend_offer_code, use_friend_offer
from bot.advocacy.referrals import ReferralOutcome, attribute_order, reconsider_after_refund, register_signup
from bot.identity import IdentityError, create_customer
from bot.identity.linking import issue_link_code
from bot.log import get_logger
from bot.loyalty.earning import ACTIONS, Credit, award, credit_for, custom_credit
from bot.loyalty.ledger import balance
from bot.loyalty.orders import LineInput, RecordedRefund, cancel_order, record_paid_order, refund_order
from bot.loyalty.program import Program
from bot.loyalty.rewards import CodeRefused, check_code, find_code, use_code
from bot.models import Customer, FriendOffer, Order, RewardCode
from bot.web import payloads
from bot.web.errors import ApiError, bad_request, code_refused
from bot.web.payloads import CustomerRef
from bot.web.store import DATABASE, SETTINGS, in_executor, in_store

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
                             status=200 if ok else 503, headers=None if ok else {"Retry-After": "5"})


# --- orders ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaidOrder:
    order_id: str
    customer: CustomerRef
    total: Decimal
    currency: str
    placed_at: datetime
    lines: List[LineInput]
    # For referrals: codes used at checkout, a referral code, and the fingerprints (hashes only).
    discount_codes: List[str]
    referral_code: Optional[str]
    shipping_address_hash: Optional[str]
    ip_hash: Optional[str]


@dataclass(frozen=True)
class Refund:
    order_id: str
    refund_id: str
    amount: Decimal
    currency: str


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
    paid = PaidOrder(
        order_id=payloads.identifier(body, "order_id"),
        customer=payloads.customer_ref(body),
        total=payloads.amount(body, "total"),
        currency=payloads.currency(body),
        placed_at=payloads.moment(body, "placed_at", clock.now()),
        lines=payloads.order_lines(body),
        discount_codes=payloads.text_list(body, "discount_codes", max_items=MAX_DISCOUNT_CODES, max_length=64),
        referral_code=payloads.optional_text(body, "referral_code", max_length=32),
        shipping_address_hash=address_hash(payloads.shipping_address(body), key),
        ip_hash=ip_hash(payloads.ip_address(body, "client_ip"), key),
    )
    return await in_store(request, partial(_record_paid, paid=paid), write=True)


async def _refunded(request: web.Request, body: Dict[str, Any]) -> Outcome:
    refund = Refund(
        order_id=payloads.identifier(body, "order_id"),
        refund_id=payloads.identifier(body, "refund_id"),
        amount=payloads.amount(body, "amount"),
        currency=payloads.currency(body),
    )
    return await in_store(request, partial(_record_refund, refund=refund), write=True)


async def _cancelled(request: web.Request, body: Dict[str, Any]) -> Outcome:
    order_id = payloads.identifier(body, "order_id")
    return await in_store(request, partial(_record_cancel, order_id=order_id), write=True)


async def _fulfilled(request: web.Request, body: Dict[str, Any]) -> Outcome:
    order_id = payloads.identifier(body, "order_id")
    fulfilled_at = payloads.moment(body, "fulfilled_at", clock.now())
    return await in_store(request, partial(_record_fulfilled, order_id=order_id, fulfilled_at=fulfilled_at), write=True)


_ORDER_EVENTS: Dict[str, Callable[[web.Request, Dict[str, Any]], Awaitable[Outcome]]] = {
    "paid": _paid, "refunded": _refunded, "cancelled": _cancelled, "fulfilled": _fulfilled,
}


def _record_paid(session: Session, program: Program, paid: PaidOrder) -> Outcome:
    customer = find_customer(session, paid.customer)
    recorded = record_paid_order(
        session, program, customer.id, paid.order_id, paid.total, paid.placed_at,
        currency=paid.currency, lines=paid.lines,
    )
    referral = None
    if recorded.created:  # a replay was attributed when it was new
        recorded.order.shipping_address_hash = paid.shipping_address_hash
        recorded.order.ip_hash = paid.ip_hash
        session.flush()
        referral = attribute_order(session, program, recorded.order, discount_codes=paid.discount_codes,
                                   referral_code=paid.referral_code, now=clock.now())
    return Outcome(recorded.created, {
        **_order_view(recorded.order),
        "points_awarded": recorded.points_awarded,
        "balance": balance(session, customer.id),
        "tier": customer.tier_name,
        **({"referral": _referral_view(referral)} if referral is not None else {}),
    })


def _record_fulfilled(session: Session, _program: Program, order_id: str, fulfilled_at: datetime) -> Outcome:
    order = _find_order(session, order_id)
    # Conditional: of two deliveries of the same fulfilment, one sets it.
    created = session.execute(
        update(Order).where(Order.id == order.id, Order.fulfilled_at.is_(None))
        .values(fulfilled_at=fulfilled_at, updated_at=clock.now()).execution_options(synchronize_session=False)
    ).rowcount == 1
    session.refresh(order)
    return Outcome(created, {**_order_view(order), "fulfilled_at": order.fulfilled_at.isoformat()})


def _record_refund(session: Session, program: Program, refund: Refund) -> Outcome:
    _find_order(session, refund.order_id)
    result = refund_order(session, program, refund.order_id, refund.refund_id, refund.amount, currency=refund.currency)
    return _take_back_outcome(session, program, result)


def _record_cancel(session: Session, program: Program, order_id: str) -> Outcome:
    _find_order(session, order_id)
    return _take_back_outcome(session, program, cancel_order(session, program, order_id))


def _take_back_outcome(session: Session, program: Program, result: RecordedRefund) -> Outcome:
    referral = reconsider_after_refund(session, program, result.order, clock.now())
    return Outcome(result.created, {
        **_order_view(result.order),
        "refund_id": result.refund.external_id,
        "amount": _money(result.refund.amount),
        "points_reversed": result.refund.points_reversed,
        "points_written_off": result.points_written_off,
        "balance": balance(session, result.order.customer_id),
        **({"referral": _referral_view(ReferralOutcome.of(referral))} if referral is not None else {}),
    })


def _find_order(session: Session, order_id: str) -> Order:
    order = session.execute(select(Order).where(Order.external_id == order_id)).scalar_one_or_none()
    if order is None:
        raise ApiError(404, "unknown_order", f"no order with id {order_id!r}")
    return order


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
    customer = find_customer(session, wanted.customer)
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


@dataclass(frozen=True)
class NewCustomer:
    email: str
    first_name: Optional[str]
    last_name: Optional[str]
    external_id: Optional[str]
    birthday: Optional[date]
    referral_code: Optional[str]
    ip_hash: Optional[str]


async def post_customer(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    email = payloads.text(body, "email", max_length=320).lower()
    if "@" not in email:
        raise bad_request(f"email {email!r} is not an email address")
    new = NewCustomer(
        email=email,
        first_name=payloads.optional_text(body, "first_name", max_length=100),
        last_name=payloads.optional_text(body, "last_name", max_length=100),
        external_id=payloads.optional_identifier(body, "external_id"),
        birthday=payloads.birthday(body),
        referral_code=payloads.optional_text(body, "referral_code", max_length=32),
        ip_hash=ip_hash(payloads.ip_address(body, "client_ip"), fingerprint_key(request.app[SETTINGS])),
    )
    outcome = await in_store(request, partial(_join, new=new), write=True)
    log.info("api.customer", customer_id=outcome.body["id"], created=outcome.created)
    return outcome.response()


def _join(session: Session, program: Program, new: NewCustomer) -> Outcome:
    """A new member with their signup points, or the member this email already is."""
    customer = _by(session, Customer.email, new.email)
    if customer is None:
        customer, created = _create_member(session, new)
        if created:
            points = _signup(session, program, customer)
            view = {**_customer_view(session, customer), "points_awarded": points}
            if new.referral_code is not None:
                referral = register_signup(session, program, customer.id, new.referral_code, new.ip_hash, clock.now())
                view["referral"] = _referral_view(referral)
            return Outcome(True, view)
    if new.external_id is not None and customer.external_id not in (None, new.external_id):
        raise ApiError(409, "conflict", f"customer {customer.id} already has external_id {customer.external_id!r}")
    _set_external_id(session, customer, new.external_id)
    return Outcome(False, {**_customer_view(session, customer), "points_awarded": 0})


def _create_member(session: Session, new: NewCustomer) -> Tuple[Customer, bool]:
    """(the new customer, True); or (the customer, False) when a concurrent sign-up of the same email
    created them first."""
    if new.external_id is not None and _by(session, Customer.external_id, new.external_id) is not None:
        raise ApiError(409, "conflict", f"external_id {new.external_id!r} belongs to a customer with another email")
    try:
        customer = create_customer(session, new.email, new.first_name, new.last_name, new.birthday)
    except IdentityError:
        winner = _by(session, Customer.email, new.email)
        if winner is None:
            raise
        return winner, False
    _set_external_id(session, customer, new.external_id)
    return customer, True


def _signup(session: Session, program: Program, customer: Customer) -> int:
    if program.earning.signup <= 0:
        return 0  # the merchant switched the welcome bonus off
    now = clock.now()
    credit = credit_for(program, customer.id, "signup", None, now)
    award(session, program, customer.id, credit, now)
    return credit.points


def _set_external_id(session: Session, customer: Customer, external_id: Optional[str]) -> None:
    if external_id is None or customer.external_id == external_id:
        return
    try:
        with session.begin_nested():
            customer.external_id = external_id
            session.flush()
    except IntegrityError:
        raise ApiError(409, "conflict", f"external_id {external_id!r} belongs to another customer") from None


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


def find_customer(session: Session, ref: CustomerRef) -> Customer:
    customer = _customer_by_ref(session, ref)
    if customer is None:
        raise ApiError(404, "unknown_customer", f"no customer with {ref.key} {ref.value!r}")
    return customer


def _customer_by_ref(session: Session, ref: CustomerRef) -> Optional[Customer]:
    column = {"id": Customer.id, "email": Customer.email, "external_id": Customer.external_id}[ref.key]
    return _by(session, column, ref.value)


def _by(session: Session, column: Any, value: Any) -> Optional[Customer]:
    return session.execute(select(Customer).where(column == value)).scalar_one_or_none()


# --- chat linking ------------------------------------------------------------------------------------


async def post_link_token(request: web.Request) -> web.Response:
    body = await payloads.json_object(request)
    ref = payloads.customer_ref(body)

    def issue(session: Session, _program: Program) -> Dict[str, Any]:
        customer = find_customer(session, ref)
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
        if is_friend_offer_code(typed):
            offer = find_friend_offer(session, typed)
            customer_id = _known_customer_id(session, customer)
            return _checked_view(typed, offer, _offer_view, lambda: check_friend_offer(
                session, program, typed, order_total=order_total, customer_id=customer_id, now=now))
        return _checked_view(typed, find_code(session, typed), _code_view, lambda: check_code(
            session, typed, order_total=order_total, currency=currency, now=now))

    return web.json_response(await in_store(request, look_up, write=False))


def _checked_view(typed: str, found: Any, view: Callable[[Any], Dict[str, Any]],
                  check: Callable[[], Any]) -> Dict[str, Any]:
    """A code's view with "valid" and, when refused, the reason; an unknown code is 404."""
    if found is None:
        raise code_refused(CodeRefused(typed, "unknown", f"no reward code {typed!r}"))
    try:
        check()
    except CodeRefused as refused:
        return {**view(found), "valid": False, "reason": refused.reason, "detail": str(refused)}
    return {**view(found), "valid": True}


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
        if is_friend_offer_code(typed):
            offer = use_friend_offer(session, program, typed, order_id, order_total=order_total,
                                     customer_id=_known_customer_id(session, customer), now=clock.now())
            return _offer_view(offer)
        code = use_code(session, typed, order_id, order_total=order_total, currency=currency, now=clock.now())
        return _code_view(code)

    view = await in_store(request, use, write=True)
    log.info("api.code_used", order_id=order_id, customer_id=view["customer_id"], friend_offer=view["friend_offer"])
    return web.json_response(view)


def _known_customer_id(session: Session, ref: Optional[CustomerRef]) -> Optional[int]:
    """The named customer's id; None when none was named or the store names someone we do not know yet (a
    new customer at their first checkout)."""
    customer = _customer_by_ref(session, ref) if ref is not None else None
    return customer.id if customer is not None else None


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
