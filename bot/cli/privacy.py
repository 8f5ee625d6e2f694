"""`python -m bot customers erase --id N | --email E [--yes]`: a personal-data erasure request.

Shows who will be erased and asks for the customer's e-mail (or ERASE for a customer without one) to be
typed back, unless --yes. Then erases them from the store and their conversations from the tracker store
(bot/privacy.py) and prints what was removed.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from bot.cli.loyalty import CommandError

CONFIRM_WORD = "ERASE"

# How the report's tables read on the command line and in the console.
TABLE_TITLES = {
    "customers": "customer's personal fields (e-mail, names, birthday, store id)",
    "channel_identities": "chat identities",
    "transcripts": "transcripts",
    "feedback": "feedback (score kept, comment and links removed)",
    "feedback_notes": "merchant notes on their feedback",
    "handoff_requests": "handoff requests (messages removed)",
    "reviews": "reviews",
    "content_submissions": "photos and videos",
    "social_follow_claims": "social follow claims",
    "quiz_runs": "quiz runs (e-mail and consent removed)",
    "product_searches": "product searches (typed text removed)",
    "link_codes": "account link codes",
    "link_attempts": "wrong link code tries",
    "outbound_messages": "queued and sent notices",
    "message_consents": "message consent records",
    "orders": "orders (address and IP hashes removed, amounts kept)",
    "referrals": "referrals as the friend (chat and IP hash removed)",
    "referral_clicks": "their visits through referral links (IP hash and browser removed)",
}
COUNT_TITLES = {"handoffs": "handoff requests", "content": "photos/videos", "quiz_runs": "quiz runs",
                "searches": "product searches"}


def _confirm(expected: str) -> bool:
    try:
        typed = input(f"Type {expected} to erase this customer's personal data for good: ")
    except EOFError:
        return False
    return typed.strip().lower() == expected.lower()


def _erase(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.loyalty.program import get_program
    from bot.privacy import UnknownCustomer, customer_by_email, customer_profile, erase_customer_everywhere
    from bot.settings import get_settings

    database = get_database()
    now = clock.now()
    try:
        with database.session() as session:
            customer_id = args.id if args.id is not None else customer_by_email(session, args.email).id
            profile = customer_profile(session, customer_id, get_program(), now)
    except UnknownCustomer as error:
        raise CommandError(str(error)) from None

    name = " ".join(part for part in (profile.first_name, profile.last_name) if part)
    print(f"customer #{profile.id}  {profile.email or '(no e-mail)'}  {name or '(no name)'}  "
          f"{profile.points_balance:,} points  tier {profile.tier}")
    chats = ", ".join(f"{row.channel}:{row.external_id}" for row in profile.identities) or "none"
    print(f"  chats: {chats}")
    print("  " + ", ".join(f"{count} {COUNT_TITLES.get(what, what)}" for what, count in profile.counts.items()))
    if not profile.has_personal_data:
        print("  no personal data left (already erased); running again changes nothing but is harmless")
    expected = profile.email or CONFIRM_WORD
    if not args.yes and not _confirm(expected):
        print("[customers] not confirmed: nothing was erased", file=sys.stderr)
        return 1

    report = erase_customer_everywhere(database, get_settings(), customer_id, actor=_actor(), now=now)
    print(f"[customers] erased customer #{report.customer_id} at {report.erased_at:%Y-%m-%d %H:%M} UTC")
    for table, count in report.deleted.items():
        print(f"  deleted     {count:>6,}  {TABLE_TITLES.get(table, table)}")
    for table, count in report.anonymised.items():
        print(f"  anonymised  {count:>6,}  {TABLE_TITLES.get(table, table)}")
    if report.points_forfeited:
        print(f"  forfeited   {report.points_forfeited:>6,}  points (ledger entry; the balance is 0)")
    print(f"  conversations erased from the tracker store: {report.trackers_erased or 0} "
          f"of {len(report.conversations)} known")
    if report.nothing_left:
        print("  nothing was left to erase")
    return 0


def _actor() -> str:
    """Who ran the command, for the audit log: the operating-system account."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (some containers): still an audit entry
        return "cli"


def _customer_id(text: str) -> int:
    try:
        value = int(text.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a customer id") from None
    if value < 1:
        raise argparse.ArgumentTypeError("a customer id is a positive number")
    return value


def add_privacy_commands(customers: Any) -> None:
    """`customers erase` under the `customers` subcommands (bot/cli/__init__.py)."""
    erase = customers.add_parser(
        "erase", help="erase a customer's personal data: store, transcripts and conversations (asks to confirm)")
    which = erase.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=_customer_id, help="the customer's id")
    which.add_argument("--email", help="the customer's e-mail")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(handler=_erase)
