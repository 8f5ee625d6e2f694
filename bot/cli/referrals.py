"""`python -m bot referrals list|show|approve|reject|stats`: the merchant's view of referrals and their
fraud decisions, and the review queue (referrals held by the per-network limit wait here).

Every command goes through bot/advocacy/referrals.py, like the store API and the bot.
"""
from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError, positive_id, store_call
from bot.models.referrals import REFERRAL_STATUSES

DEFAULT_LIMIT = 50
DEFAULT_MERCHANT = "operator"


def _referrals_list(args: argparse.Namespace) -> int:
    from bot.advocacy.referrals import list_referrals

    def work(session: Session, _program: Any) -> None:
        rows = list_referrals(session, args.status, args.limit)
        print(f"{'id':>5}  {'created':<16} {'status':<9} {'source':<13} {'advocate':<28} {'friend':<28} "
              f"{'order':<10} reason")
        for row in rows:
            referral = row.referral
            print(f"{referral.id:>5}  {referral.created_at:%Y-%m-%d %H:%M} {referral.status:<9} {referral.source:<13} "
                  f"{row.advocate_email or '-':<28} {row.friend:<28} {referral.order_external_id or '-':<10} "
                  f"{referral.reason}")
        print(f"[referrals] {len(rows)} shown" + (f" ({args.status})" if args.status else ""))

    store_call(work)
    return 0


def _referrals_show(args: argparse.Namespace) -> int:
    from bot.advocacy.referrals import referral_detail

    def work(session: Session, _program: Any) -> None:
        row, decisions = referral_detail(session, args.id)
        referral = row.referral
        print(f"referral {referral.id}: {row.advocate_email or '-'} referred {row.friend} ({referral.source})")
        print(f"  status   {referral.status}: {referral.reason}")
        print(f"  created  {referral.created_at:%Y-%m-%d %H:%M}"
              + (f", decided {referral.decided_at:%Y-%m-%d %H:%M}" if referral.decided_at else ""))
        print(f"  order    {referral.order_external_id or '-'}; advocate points {referral.points_awarded:,}")
        print("  decisions:")
        for decision in decisions:
            print(f"    {decision.created_at:%Y-%m-%d %H:%M}  {decision.decision:<9} by {decision.actor:<20} "
                  f"{decision.reason}")

    store_call(work)
    return 0


def _referrals_approve(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.advocacy.referrals import approve_referral

    def work(session: Session, program: Any) -> None:
        referral = approve_referral(session, program, args.id, _actor(args.by), clock.now())
        print(f"[referrals] referral {referral.id} approved: +{referral.points_awarded:,} points to the advocate")

    store_call(work)
    return 0


def _referrals_reject(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.advocacy.referrals import reject_referral

    def work(session: Session, program: Any) -> None:
        referral = reject_referral(session, program, args.id, _actor(args.by), args.reason, clock.now())
        print(f"[referrals] referral {referral.id} rejected: {referral.reason}")

    store_call(work)
    return 0


def _referrals_stats(_: argparse.Namespace) -> int:
    from bot.advocacy.referrals import referral_totals

    def work(session: Session, _program: Any) -> None:
        totals = referral_totals(session)
        by_status = ", ".join(f"{status} {totals.by_status.get(status, 0):,}" for status in REFERRAL_STATUSES)
        print(f"[referrals] {sum(totals.by_status.values()):,} referrals: {by_status}")
        print(f"[referrals] {totals.clicks:,} clicks; {totals.offers_issued:,} friend offers issued, "
              f"{totals.offers_used:,} used; {totals.points_paid:,} points paid to advocates")

    store_call(work)
    return 0


def _actor(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise CommandError("--by needs a name")
    return f"merchant:{name}"[:64]


def add_referral_commands(commands: Any) -> None:
    referrals = commands.add_parser(
        "referrals", help="referrals, their fraud decisions and the review queue"
    ).add_subparsers(dest="referrals_command", required=True)
    listing = referrals.add_parser("list", help="referrals, newest first")
    listing.add_argument("--status", choices=REFERRAL_STATUSES, help="review = the queue waiting for you")
    listing.add_argument("--limit", type=positive_id, default=DEFAULT_LIMIT)
    listing.set_defaults(handler=_referrals_list)
    show = referrals.add_parser("show", help="one referral with every decision, its actor and reason")
    show.add_argument("id", type=positive_id)
    show.set_defaults(handler=_referrals_show)
    approve = referrals.add_parser("approve", help="pay the advocate for a referral in review")
    approve.add_argument("id", type=positive_id)
    approve.add_argument("--by", default=DEFAULT_MERCHANT, help="who decides (recorded as merchant:NAME)")
    approve.set_defaults(handler=_referrals_approve)
    reject = referrals.add_parser(
        "reject", help="reject a referral in review, still waiting for an order, or rewarded (its points are taken "
                       "back from the advocate, as far as their balance allows)")
    reject.add_argument("id", type=positive_id)
    reject.add_argument("--reason", required=True, help="recorded, and shown to the advocate in their status")
    reject.add_argument("--by", default=DEFAULT_MERCHANT, help="who decides (recorded as merchant:NAME)")
    reject.set_defaults(handler=_referrals_reject)
    referrals.add_parser("stats", help="totals by status, clicks, friend offers, points paid").set_defaults(
        handler=_referrals_stats)
