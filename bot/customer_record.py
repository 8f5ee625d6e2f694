"""Everything the store keeps about one customer, a part at a time (the console's customer page), the
customer list with its sort, filters and CSV export, and finding a customer the way a merchant remembers
them: name, e-mail, order number, chat sender id or social handle.

Reward and friend codes are masked except their last 4 characters wherever they are shown: a person
reading the page must not be able to spend them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.checkout import mask_code, mask_codes_in
from bot.identity import find_customers
from bot.models import (
    ChannelIdentity, ContentSubmission, Customer, Feedback, HandoffRequest, LedgerEntry, Order, QuizRun, Referral,
    Review, RewardCode, SocialFollowClaim, Transcript,
)
from bot.shared.text import has_control_characters

PAGE_SIZE = 10
MAX_SEARCH_RESULTS = 50
MAX_QUERY_CHARS = 320


# --- one customer, part by part --------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One page of one part of the customer page: rows (dicts for the template), the page and whether there
    is a next one, and how many rows the part has in all."""

    name: str
    rows: List[Dict[str, Any]]
    page: int
    total: int
    page_size: int = PAGE_SIZE

    @property
    def has_more(self) -> bool:
        return self.page * self.page_size < self.total


def _page(session: Session, query: Any, page: int, size: int) -> Tuple[List[Any], int]:
    total = int(session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one())
    rows = session.execute(query.limit(size).offset((page - 1) * size)).all()
    return rows, total


def _orders(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(Order).where(Order.customer_id == customer_id)
                        .order_by(Order.placed_at.desc(), Order.id.desc()), page, size)
    return Part("orders", [{
        "number": o.external_id, "status": o.status, "total": o.total, "refunded": o.refunded_total,
        "currency": o.currency, "points": o.points_earned, "placed_at": o.placed_at, "fulfilled_at": o.fulfilled_at,
        "tracking": " ".join(filter(None, (o.tracking_company, o.tracking_number))),
    } for (o,) in rows], page, total, size)


def _ledger(session: Session, customer_id: int, page: int, size: int) -> Part:
    after = func.sum(LedgerEntry.points).over(order_by=(LedgerEntry.created_at, LedgerEntry.id)).label("after")
    entries = select(LedgerEntry.id, LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.points,
                     LedgerEntry.reason, LedgerEntry.source, LedgerEntry.source_ref, after) \
        .where(LedgerEntry.customer_id == customer_id).subquery()
    query = select(entries).order_by(entries.c.created_at.desc(), entries.c.id.desc())
    rows, total = _page(session, query, page, size)
    return Part("ledger", [{
        "at": row.created_at, "kind": row.kind, "points": row.points, "reason": mask_codes_in(row.reason),
        "source": row.source, "reference": mask_codes_in(row.source_ref or ""), "balance_after": int(row.after),
    } for row in rows], page, total, size)


def _codes(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(RewardCode).where(RewardCode.customer_id == customer_id)
                        .order_by(RewardCode.issued_at.desc(), RewardCode.id.desc()), page, size)
    return Part("codes", [{
        "code": mask_code(c.code), "title": c.title, "points": c.points_spent, "status": c.status,
        "issued_at": c.issued_at, "expires_at": c.expires_at, "used_order": c.used_order_ref,
    } for (c,) in rows], page, total, size)


def _reviews(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(Review).where(Review.customer_id == customer_id)
                        .order_by(Review.created_at.desc(), Review.id.desc()), page, size)
    return Part("reviews", [{
        "product": r.product_title, "rating": r.rating, "text": r.text, "media": r.media_kind, "status": r.status,
        "note": r.moderation_note, "points": r.points_awarded, "at": r.created_at,
    } for (r,) in rows], page, total, size)


def _content(session: Session, customer_id: int, page: int, size: int) -> Part:
    content = select(ContentSubmission.id, ContentSubmission.kind, ContentSubmission.caption, ContentSubmission.status,
                     ContentSubmission.points_awarded, ContentSubmission.created_at, ContentSubmission.channel) \
        .where(ContentSubmission.customer_id == customer_id)
    rows, total = _page(session, content.order_by(ContentSubmission.created_at.desc(), ContentSubmission.id.desc()),
                        page, size)
    follows = session.execute(select(SocialFollowClaim).where(SocialFollowClaim.customer_id == customer_id)
                              .order_by(SocialFollowClaim.created_at.desc())).scalars().all()
    part = Part("content", [{
        "kind": row.kind, "caption": row.caption, "status": row.status, "points": row.points_awarded,
        "at": row.created_at, "channel": row.channel,
    } for row in rows], page, total, size)
    part.rows.extend({"kind": f"follow on {f.network}", "caption": f.handle or "", "status": f.status,
                      "points": f.points_awarded, "at": f.created_at, "channel": f.channel}
                     for f in follows if page == 1)
    return part


def _referrals(session: Session, customer_id: int, page: int, size: int) -> Part:
    query = select(Referral).where(or_(Referral.advocate_id == customer_id, Referral.friend_customer_id == customer_id)) \
        .order_by(Referral.created_at.desc(), Referral.id.desc())
    rows, total = _page(session, query, page, size)
    other_ids = {r.friend_customer_id if r.advocate_id == customer_id else r.advocate_id for (r,) in rows}
    names = {c.id: c.display_name for c in session.execute(
        select(Customer).where(Customer.id.in_([i for i in other_ids if i is not None]))).scalars()}
    return Part("referrals", [{
        "role": "advocate" if r.advocate_id == customer_id else "friend",
        "other_id": r.friend_customer_id if r.advocate_id == customer_id else r.advocate_id,
        "other": names.get(r.friend_customer_id if r.advocate_id == customer_id else r.advocate_id)
        or f"a guest on {r.friend_channel or 'the store'}",
        "status": r.status, "reason": r.reason, "order": r.order_external_id, "points": r.points_awarded,
        "source": r.source, "at": r.created_at,
    } for (r,) in rows], page, total, size)


def _feedback(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(Feedback).where(Feedback.customer_id == customer_id)
                        .order_by(Feedback.created_at.desc(), Feedback.id.desc()), page, size)
    return Part("feedback", [{
        "id": f.id, "kind": f.kind, "score": f.score, "comment": mask_codes_in(f.comment or ""),
        "status": f.status, "has_transcript": f.transcript_id is not None, "at": f.created_at,
    } for (f,) in rows], page, total, size)


def _quiz_runs(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(QuizRun).where(QuizRun.customer_id == customer_id)
                        .order_by(QuizRun.started_at.desc(), QuizRun.id.desc()), page, size)
    return Part("quiz_runs", [{
        "quiz": q.quiz_id, "status": q.status, "answers": len(q.answers or {}), "results": len(q.results or []),
        "points": q.points_awarded, "at": q.started_at, "completed_at": q.completed_at,
    } for (q,) in rows], page, total, size)


def _handoffs(session: Session, customer_id: int, page: int, size: int) -> Part:
    rows, total = _page(session, select(HandoffRequest).where(HandoffRequest.customer_id == customer_id)
                        .order_by(HandoffRequest.requested_at.desc(), HandoffRequest.id.desc()), page, size)
    return Part("handoffs", [{
        "id": h.id, "channel": h.channel, "status": h.status, "reason": mask_codes_in(h.reason), "at": h.requested_at,
        "resolution": h.resolution, "language": h.language,
    } for (h,) in rows], page, total, size)


def _conversations(session: Session, customer_id: int, page: int, size: int) -> Part:
    """The conversations kept when the customer gave feedback or asked for a person, newest first; the
    turns as stored (the console shows them through bot/console/transcripts.py, codes masked)."""
    rows, total = _page(session, select(Transcript).where(Transcript.customer_id == customer_id)
                        .order_by(Transcript.created_at.desc(), Transcript.id.desc()), page, size)
    return Part("conversations", [{
        "id": t.id, "reason": t.reason, "channel": t.channel, "at": t.created_at, "turns": list(t.turns or []),
        "redacted": t.redacted, "language": t.language,
    } for (t,) in rows], page, total, size)


def _consent(session: Session, customer_id: int, page: int, size: int) -> Part:
    """Consent given in chat: the e-mail a quiz asked for, with the words the shopper agreed to."""
    rows, total = _page(session, select(QuizRun).where(QuizRun.customer_id == customer_id,
                                                        QuizRun.consent_at.is_not(None))
                        .order_by(QuizRun.consent_at.desc(), QuizRun.id.desc()), page, size)
    return Part("consent", [{
        "what": f"e-mail news after the {q.quiz_id} quiz", "email": q.email or "", "words": q.consent_text or "",
        "channel": q.channel, "at": q.consent_at,
    } for (q,) in rows], page, total, size)


PARTS: Mapping[str, Callable[[Session, int, int, int], Part]] = {
    "orders": _orders, "ledger": _ledger, "codes": _codes, "reviews": _reviews, "content": _content,
    "referrals": _referrals, "feedback": _feedback, "conversations": _conversations, "quiz_runs": _quiz_runs,
    "handoffs": _handoffs, "consent": _consent,
}


def customer_parts(session: Session, customer_id: int, pages: Mapping[str, int],
                   size: int = PAGE_SIZE) -> Dict[str, Part]:
    """Every part of the customer page, each at its own page (1 unless `pages` says otherwise)."""
    return {name: part(session, customer_id, max(1, pages.get(name, 1)), size) for name, part in PARTS.items()}


# --- finding customers -------------------------------------------------------------------------------


def search_customers(session: Session, query: str, limit: int = MAX_SEARCH_RESULTS) -> List[Customer]:
    """Customers by e-mail, id, chat sender id (bot.identity.find_customers), and also by name (any part,
    any case), order number ("1042" or "#1042") or social handle ("@ann.home"), best matches first."""
    wanted = " ".join((query or "").split())[:MAX_QUERY_CHARS]
    if not wanted or has_control_characters(wanted):
        return []
    found: Dict[int, Customer] = {c.id: c for c in find_customers(session, wanted, limit)}
    number = wanted.lstrip("#")
    for customer in session.execute(select(Customer).join(Order, Order.customer_id == Customer.id)
                                    .where(Order.external_id == number).limit(limit)).scalars():
        found.setdefault(customer.id, customer)
    handle = wanted.lstrip("@").lower()
    if handle:
        for customer in session.execute(
                select(Customer).join(SocialFollowClaim, SocialFollowClaim.customer_id == Customer.id)
                .where(func.lower(func.ltrim(SocialFollowClaim.handle, "@")) == handle).limit(limit)).scalars():
            found.setdefault(customer.id, customer)
    if "@" not in wanted and len(wanted) >= 2:
        pattern = "%" + wanted.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        full = func.lower(func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, ""))
        for customer in session.execute(select(Customer).where(full.like(pattern, escape="\\"))
                                        .order_by(Customer.id).limit(limit)).scalars():
            found.setdefault(customer.id, customer)
    return list(found.values())[:limit]


# --- the customer list --------------------------------------------------------------------------------

SORTS = {
    "newest": "customer since, newest first", "name": "name", "balance": "balance, highest first",
    "last_order": "last order, most recent first",
}


@dataclass(frozen=True)
class CustomerFilter:
    """The list's filters, from the page's query; `errors` names what could not be read."""

    tier: str = ""  # a tier's name, "none" for no tier, "" for any
    min_balance: Optional[int] = None
    max_balance: Optional[int] = None
    ordered_within_days: Optional[int] = None  # a last order within this many days
    no_order_for_days: Optional[int] = None  # no order for at least this many days (or never)
    sort: str = "newest"
    errors: Tuple[str, ...] = field(default=())

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "CustomerFilter":
        errors: List[str] = []

        def number(name: str, label: str) -> Optional[int]:
            text = (params.get(name) or "").strip()
            if not text:
                return None
            if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 9:
                return int(text)
            errors.append(f"{label} must be a whole number")
            return None

        sort = params.get("sort") or "newest"
        if sort not in SORTS:
            errors.append("unknown sort order")
            sort = "newest"
        tier = (params.get("tier") or "").strip()[:64]
        if has_control_characters(tier):
            errors.append("tier holds characters no tier name has")
            tier = ""
        return cls(tier, number("min_balance", "Minimum balance"), number("max_balance", "Maximum balance"),
                   number("ordered_within", "Ordered within (days)"), number("no_order_for", "No order for (days)"),
                   sort, tuple(errors))

    def query_string(self) -> str:
        from urllib.parse import urlencode

        values = {"tier": self.tier, "min_balance": self.min_balance, "max_balance": self.max_balance,
                  "ordered_within": self.ordered_within_days, "no_order_for": self.no_order_for_days,
                  "sort": self.sort if self.sort != "newest" else None}
        return urlencode({key: value for key, value in values.items() if value not in (None, "")})


@dataclass(frozen=True)
class CustomerListRow:
    id: int
    name: str
    email: Optional[str]
    tier: Optional[str]
    balance: int
    orders: int
    last_order_at: Optional[datetime]
    created_at: datetime
    channels: str


def list_customers(session: Session, wanted: CustomerFilter, now: datetime, limit: int = 50,
                   offset: int = 0) -> List[CustomerListRow]:
    orders = select(Order.customer_id, func.count(Order.id).label("orders"),
                    func.max(Order.placed_at).label("last_order_at")).group_by(Order.customer_id).subquery()
    query = select(Customer, func.coalesce(orders.c.orders, 0), orders.c.last_order_at) \
        .outerjoin(orders, orders.c.customer_id == Customer.id)
    if wanted.tier == "none":
        query = query.where(Customer.tier_name.is_(None))
    elif wanted.tier:
        query = query.where(func.lower(Customer.tier_name) == wanted.tier.lower())
    if wanted.min_balance is not None:
        query = query.where(Customer.points_balance >= wanted.min_balance)
    if wanted.max_balance is not None:
        query = query.where(Customer.points_balance <= wanted.max_balance)
    if wanted.ordered_within_days is not None:
        query = query.where(orders.c.last_order_at >= now - timedelta(days=wanted.ordered_within_days))
    if wanted.no_order_for_days is not None:
        query = query.where(or_(orders.c.last_order_at.is_(None),
                                orders.c.last_order_at < now - timedelta(days=wanted.no_order_for_days)))
    order_by = {
        "newest": (Customer.created_at.desc(), Customer.id.desc()),
        "name": (func.lower(func.coalesce(Customer.first_name, "")), func.lower(func.coalesce(Customer.last_name, "")),
                 Customer.id),
        "balance": (Customer.points_balance.desc(), Customer.id),
        # Customers who never ordered last, whichever way the database sorts NULLs.
        "last_order": (orders.c.last_order_at.is_(None), orders.c.last_order_at.desc(), Customer.id),
    }[wanted.sort]
    rows = session.execute(query.order_by(*order_by).limit(limit).offset(offset)).all()
    ids = [customer.id for customer, _, _ in rows]
    channels: Dict[int, List[str]] = {}
    if ids:
        for customer_id, channel in session.execute(
                select(ChannelIdentity.customer_id, ChannelIdentity.channel)
                .where(ChannelIdentity.customer_id.in_(ids)).distinct().order_by(ChannelIdentity.channel)):
            channels.setdefault(customer_id, []).append(channel)
    return [CustomerListRow(c.id, " ".join(filter(None, (c.first_name, c.last_name))), c.email, c.tier_name,
                            c.points_balance, int(count), last, c.created_at, ", ".join(channels.get(c.id, [])))
            for c, count, last in rows]


def tier_names(session: Session) -> List[str]:
    return [name for (name,) in session.execute(
        select(Customer.tier_name).where(Customer.tier_name.is_not(None)).distinct().order_by(Customer.tier_name))]


EXPORT_COLUMNS: Sequence[str] = ("id", "name", "email", "tier", "balance", "orders", "last_order_at",
                                 "customer_since", "chats")


def export_cells(row: CustomerListRow) -> List[object]:
    return [row.id, row.name, row.email or "", row.tier or "", row.balance, row.orders,
            row.last_order_at.isoformat() if row.last_order_at else "", row.created_at.isoformat(), row.channels]
