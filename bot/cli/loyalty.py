"""`python -m bot ledger|orders|points|rewards|codes|loyalty|import …`: the loyalty engine from a terminal.

Every command goes through the same services as the web API and the bot.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Tuple, Type

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.identity.customers import MAX_ID, CustomerRef, find_customer as find_by_ref
from bot.models import Customer


class CommandError(RuntimeError):
    """A command that cannot do what was asked; the message says why (exit code 1)."""


def find_customer(session: Session, reference: str) -> Customer:
    """A customer by id (digits) or email."""
    customer = find_by_ref(session, CustomerRef.parse(reference))
    if customer is None:
        raise CommandError(f"no customer {reference.strip()!r} (give an id or an email)")
    return customer


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from None


def parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date and time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2026-11-23T10:00:00+00:00")
    return moment


def positive_id(text: str) -> int:
    """An argparse type for an id (or a count): a whole number from 1 to MAX_ID."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to {MAX_ID}")
    return int(text)


def _line(text: str) -> Any:
    from bot.loyalty.orders import LineInput

    parts = text.split(":")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: a line is SKU:TITLE:QUANTITY:UNIT_PRICE")
    sku, title, quantity, price = parts
    if not quantity.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: quantity must be a whole number")
    return LineInput(title=title, quantity=int(quantity), unit_price=_amount(price), sku=sku or None)


def store_call(work: Any, *, write: bool = True, refusals: Tuple[Type[Exception], ...] = ()) -> Any:
    """Run `work(session, program)` in one transaction (a write one unless told); service refusals (and the
    command's own `refusals`) become CommandError."""
    from bot.db import transaction
    from bot.identity import IdentityError
    from bot.loyalty.ledger import LedgerError
    from bot.loyalty.program import get_program
    from bot.loyalty.rewards import CodeRefused

    program = get_program()
    try:
        return transaction(lambda session: work(session, program), write=write)
    except (LedgerError, CodeRefused, IdentityError, *refusals) as error:
        raise CommandError(str(error)) from None


def _ledger_verify(_: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.loyalty.ledger import verify_balances

    with get_database().session() as session:
        mismatches = verify_balances(session)
        checked = session.execute(select(func.count(Customer.id))).scalar_one()
    for item in mismatches:
        print(f"customer {item.customer_id}: balance {item.balance} != ledger sum {item.ledger_sum}")
    print(f"[ledger] {checked} customers checked, {len(mismatches)} mismatches")
    return 1 if mismatches else 0


def _ledger_show(args: argparse.Namespace) -> int:
    from bot.loyalty.ledger import recent_entries

    def work(session: Session, _program: Any) -> None:
        customer = find_customer(session, args.customer)
        entries = recent_entries(session, customer.id, args.limit)
        for entry in reversed(entries):
            print(f"{entry.created_at:%Y-%m-%d %H:%M}  {entry.points:>+8,}  {entry.kind:<8} {entry.source:<12} {entry.reason}")
        print(f"[ledger] {customer.email}: balance {customer.points_balance:,} points ({len(entries)} latest entries)")

    store_call(work)
    return 0


def _orders_add(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.order_events import PaidOrder, record_paid

    def work(session: Session, program: Any) -> None:
        customer = find_customer(session, args.customer)
        paid = record_paid(session, program, PaidOrder(
            args.id, customer.id, args.total, args.placed_at or clock.now(), currency=args.currency,
            lines=args.line or [], discount_codes=args.discount_code or [], referral_code=args.referral_code))
        if not paid.created:
            print(f"[orders] order {args.id} was already recorded; nothing changed")
            return
        print(f"[orders] order {args.id} recorded for {customer.email}: +{paid.points_awarded:,} points "
              f"(balance {customer.points_balance:,})")
        if paid.referral is not None:
            _print_referral(paid.referral)

    store_call(work)
    return 0


def _orders_refund(args: argparse.Namespace) -> int:
    from bot.order_events import Refund, record_refund

    def work(session: Session, program: Any) -> None:
        taken = record_refund(session, program, Refund(args.id, args.refund_id, args.amount, currency=args.currency))
        _print_take_back(taken, "refund " + args.refund_id)

    store_call(work)
    return 0


def _orders_cancel(args: argparse.Namespace) -> int:
    from bot.order_events import record_cancellation

    def work(session: Session, program: Any) -> None:
        _print_take_back(record_cancellation(session, program, args.id), "cancellation")

    store_call(work)
    return 0


def _orders_fulfil(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.loyalty.orders import Tracking
    from bot.order_events import Fulfilment, record_fulfilment

    tracking = Tracking(args.carrier, args.tracking_number, args.tracking_url)
    fulfilment = Fulfilment(args.id, args.fulfilled_at or clock.now(),
                            tracking if tracking != Tracking() else None)

    def work(session: Session, _program: Any) -> None:
        fulfilled = record_fulfilment(session, fulfilment)
        order = fulfilled.order
        if not fulfilled.created:
            print(f"[orders] order {order.external_id} was already fulfilled; nothing changed")
            return
        parcel = " ".join(part for part in (order.tracking_company, order.tracking_number) if part)
        print(f"[orders] order {order.external_id} fulfilled at {order.fulfilled_at:%Y-%m-%d %H:%M}"
              + (f", tracking {parcel}" if parcel else ""))

    store_call(work)
    return 0


def _print_take_back(taken: Any, what: str) -> None:
    if not taken.created:
        print(f"[orders] {what} of order {taken.order.external_id} was already recorded; nothing changed")
        return
    written_off = f", {taken.points_written_off:,} already spent and written off" if taken.points_written_off else ""
    print(f"[orders] {what} of order {taken.order.external_id} ({taken.refund.amount}): "
          f"-{taken.points_reversed:,} points{written_off}; order is now {taken.order.status}")
    if taken.referral is not None:
        _print_referral(taken.referral)


def _print_referral(referral: Any) -> None:
    points = f" (advocate {referral.advocate_points:+,} points)" if referral.status == "rewarded" else ""
    print(f"[referrals] referral {referral.referral_id} {referral.status}{points}: {referral.reason}")


def _points_credit(args: argparse.Namespace) -> int:
    from bot.loyalty.earning import award, credit_for, custom_credit

    def work(session: Session, program: Any) -> None:
        customer = find_customer(session, args.customer)
        if args.action in program.earning.custom_actions:
            if not args.key:
                raise CommandError(f"{args.action} is a custom action: pass --key (what makes this occasion unique)")
            credit = custom_credit(program, customer.id, args.action, args.key)
        else:
            from bot import clock

            credit = credit_for(program, customer.id, args.action, args.reference, clock.now())
        posted = award(session, program, customer.id, credit)
        state = f"+{credit.points:,} points" if posted.created else "already credited; nothing changed"
        print(f"[points] {args.action} for {customer.email}: {state} (balance {customer.points_balance:,})")

    store_call(work)
    return 0


def _rewards_redeem(args: argparse.Namespace) -> int:
    from bot.loyalty.rewards import redeem

    def work(session: Session, program: Any) -> None:
        customer = find_customer(session, args.customer)
        code = redeem(session, program, customer.id, args.reward).code
        print(f"[rewards] {code.title} for {customer.email}: code {code.code}, valid until {code.expires_at:%Y-%m-%d}"
              + (f", minimum order {program.money(code.min_order)}" if code.min_order else "")
              + f" (balance {customer.points_balance:,})")

    store_call(work)
    return 0


def _rewards_list(_: argparse.Namespace) -> int:
    from bot.loyalty.program import get_program

    program = get_program()
    for reward in program.rewards:
        minimum = f", min order {program.money(reward.min_order)}" if reward.min_order else ""
        print(f"{reward.id:<18} {reward.points:>7,} points  {reward.title} ({reward.kind}{minimum}, "
              f"valid {reward.valid_months} months)")
    return 0


def _codes_show(args: argparse.Namespace) -> int:
    from bot import checkout
    from bot.loyalty.rewards import CodeRefused
    from bot.models import FriendOffer

    def work(session: Session, program: Any) -> int:
        try:
            found = checkout.check_code(session, program, args.code, order_total=args.order_total)
            refused = None
        except CodeRefused as error:
            if error.found is None:
                raise CommandError(str(error)) from None
            found, refused = error.found, error
        if isinstance(found, FriendOffer):
            print(f"{found.code}: {found.percent_off}% off a first order (a friend's offer), "
                  f"issued {found.issued_at:%Y-%m-%d}, valid until {found.expires_at:%Y-%m-%d}"
                  + (f", used on order {found.used_order_ref} at {found.used_at:%Y-%m-%d %H:%M}" if found.used_at else ""))
        else:
            print(f"{found.code}: {found.title} ({found.kind}) for customer {found.customer_id}, "
                  f"issued {found.issued_at:%Y-%m-%d}, valid until {found.expires_at:%Y-%m-%d}"
                  + (f", minimum order {program.money(found.min_order)}" if found.min_order else "")
                  + (f", used on order {found.used_order_ref} at {found.used_at:%Y-%m-%d %H:%M}" if found.used_at else ""))
        if refused is not None:
            print(f"[codes] not valid ({refused.reason}): {refused}")
            return 1
        print("[codes] valid" + (f" for an order of {args.order_total}" if args.order_total else ""))
        return 0

    return int(store_call(work, write=False))


def _codes_use(args: argparse.Namespace) -> int:
    from bot import checkout

    def work(session: Session, program: Any) -> None:
        code = checkout.use_code(session, program, args.code, args.order, order_total=args.order_total)
        print(f"[codes] {code.code} marked used on order {code.used_order_ref}")

    store_call(work)
    return 0


def _loyalty_expire(_: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.loyalty.expiry import expire_points
    from bot.loyalty.program import get_program

    def progress(report: Any) -> None:
        print(f"\r[expiry] {report.customers_checked:,} customers with points near or past expiry checked",
              end="", file=sys.stderr, flush=True)

    report = expire_points(get_database(), get_program(), clock.now(), progress=progress)
    if report.customers_checked:
        print(file=sys.stderr)
    print(f"[expiry] {report.expired_points:,} points expired for {report.expired_customers} customers; "
          f"{report.warnings_queued} warnings queued")
    return 0


def _loyalty_tiers(_: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.loyalty.jobs import review_tiers
    from bot.loyalty.program import get_program

    report = review_tiers(get_database(), get_program(), clock.now())
    print(f"[tiers] {report.reviewed} customers at the end of their tier term reviewed: {report.promoted} up, "
          f"{report.demoted} down" + (f", {report.failed} failed (see the log)" if report.failed else ""))
    return 1 if report.failed else 0


def _import(args: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.history_import import import_command
    from bot.loyalty.program import get_program

    database = get_database()
    database.create_schema()
    return import_command(args.files, customers=args.customers, orders=args.orders, database=database,
                          program=get_program())


def add_loyalty_commands(commands: Any) -> None:
    ledger = commands.add_parser("ledger", help="points ledger").add_subparsers(dest="ledger_command", required=True)
    ledger.add_parser("verify", help="check every balance equals the sum of its ledger entries").set_defaults(
        handler=_ledger_verify)
    show = ledger.add_parser("show", help="a customer's latest entries")
    show.add_argument("--customer", required=True, help="id or email")
    show.add_argument("--limit", type=int, default=20)
    show.set_defaults(handler=_ledger_show)

    orders = commands.add_parser("orders", help="record orders from the store").add_subparsers(
        dest="orders_command", required=True)
    add = orders.add_parser("add", help="record a paid order and award its points")
    add.add_argument("--customer", required=True, help="id or email")
    add.add_argument("--id", required=True, help="the store's order id")
    add.add_argument("--total", required=True, type=_amount)
    add.add_argument("--currency", help="defaults to the program's currency")
    add.add_argument("--placed-at", type=parse_moment, help="ISO-8601 with zone; default now")
    add.add_argument("--line", action="append", type=_line, help="SKU:TITLE:QUANTITY:UNIT_PRICE (repeatable)")
    add.add_argument("--discount-code", action="append", metavar="CODE",
                     help="a code used at checkout (repeatable): a friend's offer attributes the order to its advocate")
    add.add_argument("--referral-code", metavar="CODE", help="an advocate's referral code given with the order")
    add.set_defaults(handler=_orders_add)
    refund = orders.add_parser("refund", help="refund part or all of an order (points back pro rata)")
    refund.add_argument("--id", required=True)
    refund.add_argument("--refund-id", required=True, help="the store's refund id (replays are ignored)")
    refund.add_argument("--amount", required=True, type=_amount)
    refund.add_argument("--currency")
    refund.set_defaults(handler=_orders_refund)
    cancel = orders.add_parser("cancel", help="cancel an order (its remaining points are taken back)")
    cancel.add_argument("--id", required=True)
    cancel.set_defaults(handler=_orders_cancel)
    fulfil = orders.add_parser("fulfil", help="record that an order shipped (review requests count from it)")
    fulfil.add_argument("--id", required=True)
    fulfil.add_argument("--fulfilled-at", type=parse_moment, help="ISO-8601 with zone; default now")
    fulfil.add_argument("--carrier", help="the parcel's carrier")
    fulfil.add_argument("--tracking-number")
    fulfil.add_argument("--tracking-url")
    fulfil.set_defaults(handler=_orders_fulfil)

    points = commands.add_parser("points", help="credit earning rules").add_subparsers(dest="points_command", required=True)
    credit = points.add_parser("credit", help="credit a rule: birthday, social_follow, review_*, quiz_completion, "
                                              "signup or a custom action from the program")
    credit.add_argument("--customer", required=True)
    credit.add_argument("--action", required=True)
    credit.add_argument("--reference", help="network, review id or quiz id")
    credit.add_argument("--key", help="idempotency key for custom actions")
    credit.set_defaults(handler=_points_credit)

    rewards = commands.add_parser("rewards", help="the reward catalog").add_subparsers(dest="rewards_command", required=True)
    rewards.add_parser("list", help="rewards and their cost").set_defaults(handler=_rewards_list)
    redeem = rewards.add_parser("redeem", help="redeem a reward for a customer and print the code")
    redeem.add_argument("--customer", required=True)
    redeem.add_argument("--reward", required=True, help="reward id (see `rewards list`)")
    redeem.set_defaults(handler=_rewards_redeem)

    codes = commands.add_parser("codes", help="reward codes at checkout").add_subparsers(dest="codes_command", required=True)
    show_code = codes.add_parser("show", help="look up and validate a code")
    show_code.add_argument("code")
    show_code.add_argument("--order-total", type=_amount)
    show_code.set_defaults(handler=_codes_show)
    use = codes.add_parser("use", help="mark a code used for an order")
    use.add_argument("code")
    use.add_argument("--order", required=True)
    use.add_argument("--order-total", type=_amount)
    use.set_defaults(handler=_codes_use)

    loyalty = commands.add_parser("loyalty", help="scheduled loyalty jobs, run by hand").add_subparsers(
        dest="loyalty_command", required=True)
    loyalty.add_parser("expire", help="expire inactive points and queue warnings").set_defaults(handler=_loyalty_expire)
    loyalty.add_parser("tiers", help="review tiers whose term ended (demotions)").set_defaults(handler=_loyalty_tiers)

    bulk = commands.add_parser(
        "import", help="import Shopify customer and order exports (CSV); safe to run again",
        description="Import a Shopify customer export and/or order export. The files are told apart by their "
                    "header row, so give them in any order. Exit code 0: every row imported; 1: some rows were "
                    "rejected (listed with line and reason); 2: a file cannot be used, nothing was imported.",
    )
    bulk.add_argument("files", nargs="*", type=Path, metavar="FILE", help="customers.csv and/or orders.csv")
    bulk.add_argument("--customers", type=Path, metavar="FILE", help="the Shopify customer export")
    bulk.add_argument("--orders", type=Path, metavar="FILE", help="the Shopify order export")
    bulk.set_defaults(handler=_import)
