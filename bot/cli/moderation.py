"""`python -m bot reviews|content|social …`: the merchant's approval queues from a terminal, and a dry run of
the review-request policy (`reviews due-requests`).

Decisions go through the same services as the console (bot/advocacy): approval pays once through the
ledger, and the shopper is told through a queued notice.
"""
from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError, parse_moment, positive_id, store_call
from bot.models import ContentSubmission, Customer, Review, SocialFollowClaim

STATUSES = ("pending", "approved", "rejected")
PREVIEW_CHARS = 60


@dataclass(frozen=True)
class _Queue:
    """One approval queue as the commands see it."""

    command: str  # reviews | content | social
    noun: str  # what one item is called in messages
    model: Any
    moderate: Callable[..., Any]  # moderate_review(session, program, id, *, approve, actor, note, now)
    row: Callable[[Any, str], str]  # one line of `list`
    details: Callable[[Any, str], List[str]]  # the lines of `show`


# ---------------------------------------------------------------------------------------------
# How items are printed


def _preview(text: str) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1] + "…"


def _decision(item: Any) -> List[str]:
    if item.status == "pending":
        return ["decision: pending"]
    note = f" — {item.moderation_note}" if item.moderation_note else ""
    return [f"decision: {item.status} by {item.moderated_by} at {item.moderated_at:%Y-%m-%d %H:%M}{note}; "
            f"{item.points_awarded:,} points paid"]


def _media_lines(reference: Optional[str], urls: List[str]) -> List[str]:
    if reference and reference.startswith("telegram:"):
        return [f"telegram file id: {reference[len('telegram:'):]}"]
    return [f"url: {url}" for url in urls or []]


def _review_row(review: Review, who: str) -> str:
    return (f"#{review.id:<5} {review.product_sku} {review.product_title}  {review.rating}/5  {who}  "
            f"{review.media_kind}  {_preview(review.text)!r}  {review.created_at:%Y-%m-%d %H:%M}")


def _review_details(review: Review, who: str) -> List[str]:
    order = f" (order {review.order_external_id})" if review.order_external_id else ""
    return [
        f"review #{review.id} ({review.status})",
        f"product: {review.product_sku} {review.product_title}{order}",
        f"by: {who} via {review.channel}:{review.sender_id}",
        f"rating: {review.rating}/5",
        f"media: {review.media_kind}",
        *_media_lines(review.media_reference, review.media_urls),
        f"created: {review.created_at:%Y-%m-%d %H:%M}",
        *_decision(review),
        "text:",
        *(f"  {line}" for line in review.text.splitlines()),
    ]


def _content_row(submission: ContentSubmission, who: str) -> str:
    return (f"#{submission.id:<5} {submission.kind}  {who}  {submission.channel}  {_preview(submission.caption)!r}  "
            f"{submission.created_at:%Y-%m-%d %H:%M}")


def _content_details(submission: ContentSubmission, who: str) -> List[str]:
    return [
        f"{submission.kind} #{submission.id} ({submission.status})",
        f"by: {who} via {submission.channel}:{submission.sender_id}",
        *_media_lines(submission.reference, submission.urls),
        f"caption: {submission.caption or '-'}",
        f"created: {submission.created_at:%Y-%m-%d %H:%M}",
        *_decision(submission),
    ]


def _social_row(claim: SocialFollowClaim, who: str) -> str:
    handle = f"@{claim.handle}" if claim.handle else "(no handle)"
    return f"#{claim.id:<5} {claim.network}  {handle}  {who}  {claim.channel}  {claim.created_at:%Y-%m-%d %H:%M}"


def _social_details(claim: SocialFollowClaim, who: str) -> List[str]:
    return [f"social follow claim #{claim.id} ({claim.status})", _social_row(claim, who), *_decision(claim)]


# The command groups and what one of their items is called.
_NOUNS = {"reviews": "review", "content": "submission", "social": "social follow claim"}


def _queues() -> Dict[str, _Queue]:
    # Imported when a queue command runs, not when the parser is built for every other command.
    from bot.advocacy.content import moderate_submission
    from bot.advocacy.reviews import moderate_review
    from bot.advocacy.social import moderate_social_claim

    return {
        "reviews": _Queue("reviews", _NOUNS["reviews"], Review, moderate_review, _review_row, _review_details),
        "content": _Queue("content", _NOUNS["content"], ContentSubmission, moderate_submission, _content_row,
                          _content_details),
        "social": _Queue("social", _NOUNS["social"], SocialFollowClaim, moderate_social_claim, _social_row,
                         _social_details),
    }


def _who(customer_id: Optional[int], email: Optional[str], channel: str) -> str:
    if customer_id is None:
        return f"guest ({channel})"
    return email or f"customer {customer_id}"


# ---------------------------------------------------------------------------------------------
# Commands


def _list(args: argparse.Namespace) -> int:
    queue = _queues()[args.queue]
    model = queue.model

    def work(session: Session, _program: Any) -> None:
        rows = session.execute(
            select(model, Customer.email)
            .outerjoin(Customer, Customer.id == model.customer_id)
            .where(model.status == args.status)
            .order_by(model.created_at, model.id)
            .limit(args.limit)
        ).all()
        for item, email in rows:
            print(queue.row(item, _who(item.customer_id, email, item.channel)))
        print(f"[{queue.command}] {len(rows)} {args.status}" + (f" (first {args.limit})" if len(rows) == args.limit else ""))

    store_call(work, write=False)
    return 0


def _show(args: argparse.Namespace) -> int:
    queue = _queues()[args.queue]

    def work(session: Session, _program: Any) -> None:
        item = _item(session, queue, args.id)
        print("\n".join(queue.details(item, _who_of(session, item))))

    store_call(work, write=False)
    return 0


def _approve(args: argparse.Namespace) -> int:
    return _decide(args, approve=True, note=args.note)


def _reject(args: argparse.Namespace) -> int:
    return _decide(args, approve=False, note=args.reason)


def _decide(args: argparse.Namespace, *, approve: bool, note: Optional[str]) -> int:
    from bot import clock

    queue = _queues()[args.queue]

    def work(session: Session, program: Any) -> None:
        result = queue.moderate(session, program, args.id, approve=approve, actor=args.by or _operator(), note=note,
                                now=clock.now())
        who = _who_of(session, _item(session, queue, args.id))
        if result.customer_id is None:
            outcome = "guest: no points, not notified"
        elif approve:
            outcome = f"+{result.points_awarded:,} points for {who}, notified"
        else:
            outcome = f"{who} notified"
        print(f"[{queue.command}] {queue.noun} #{result.item_id} {result.status} ({outcome})")

    from bot.advocacy.moderation import ModerationError

    store_call(work, refusals=(ModerationError,))
    return 0


def _due_requests(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.advocacy.review_requests import due_review_requests

    at = args.at or clock.now()

    def work(session: Session, program: Any) -> None:
        due = due_review_requests(session, program, at, limit=args.limit)
        emails = {customer_id: email for customer_id, email in session.execute(
            select(Customer.id, Customer.email).where(Customer.id.in_({item.customer_id for item in due}))
        )}
        for item in due:
            products = ", ".join(f"{product.sku} {product.title}" for product in item.products)
            print(f"{_who(item.customer_id, emails.get(item.customer_id), '')}  order {item.order_external_id}  "
                  f"{item.kind}: {products}")
        print(f"[reviews] {len(due)} review messages due at {at:%Y-%m-%d %H:%M %Z} (dry run: nothing recorded)")

    store_call(work, write=False)
    return 0


def _item(session: Session, queue: _Queue, item_id: int) -> Any:
    item = session.get(queue.model, item_id)
    if item is None:
        raise CommandError(f"no {queue.noun} #{item_id}")
    return item


def _who_of(session: Session, item: Any) -> str:
    customer = session.get(Customer, item.customer_id) if item.customer_id is not None else None
    return _who(item.customer_id, customer.email if customer else None, item.channel)


def _operator() -> str:
    """Who decided, when --by is not given: the account running the command."""
    try:
        return getpass.getuser()[:64] or "cli"
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


def add_moderation_commands(commands: Any) -> None:
    helps = {
        "reviews": "product reviews left in chat: approval queue and review requests",
        "content": "photos and videos shoppers sent in chat: approval queue",
        "social": "social-follow claims: approval queue",
    }
    for name, noun in _NOUNS.items():
        group = commands.add_parser(name, help=helps[name]).add_subparsers(dest=f"{name}_command", required=True)
        listing = group.add_parser("list", help=f"{noun}s by status, oldest first")
        listing.add_argument("--status", choices=STATUSES, default="pending")
        listing.add_argument("--limit", type=positive_id, default=50)
        listing.set_defaults(handler=_list, queue=name)
        show = group.add_parser("show", help=f"one {noun} in full")
        show.add_argument("id", type=positive_id)
        show.set_defaults(handler=_show, queue=name)
        approve = group.add_parser("approve", help=f"approve a pending {noun} (pays its points once)")
        approve.add_argument("id", type=positive_id)
        approve.add_argument("--by", help="who decided (default: your login name)")
        approve.add_argument("--note", help="an internal note (at most 255 characters)")
        approve.set_defaults(handler=_approve, queue=name)
        reject = group.add_parser("reject", help=f"reject a pending {noun}; the shopper is told the reason")
        reject.add_argument("id", type=positive_id)
        reject.add_argument("--reason", required=True, help="what the shopper is told (at most 255 characters)")
        reject.add_argument("--by", help="who decided (default: your login name)")
        reject.set_defaults(handler=_reject, queue=name)
        if name == "reviews":
            due = group.add_parser("due-requests", help="review requests and reminders due now (dry run)")
            due.add_argument("--at", type=parse_moment, help="ISO-8601 with zone; default now")
            due.add_argument("--limit", type=positive_id, default=100)
            due.set_defaults(handler=_due_requests, queue=name)
