"""The merchant console's feedback inbox as a service: filters parsed from a query string (with the errors a
person can read), one page of feedback newest first, a feedback with its transcript and notes, status
changes, notes, and the rows of a CSV export in batches.

Paging is by keyset on (created_at, id), never by OFFSET: every page — the 4,000th as much as the first —
reads only its own 26 rows along the ix_feedback_created_at_id index (plus whatever rows the filters skip),
and a feedback arriving meanwhile does not shift what "older" means. The total is counted up to COUNT_CAP
only: beyond that "more than 1,000" is as useful and does not cost a scan of the whole table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause, ColumnElement, UnaryExpression
from sqlalchemy.sql.operators import custom_op
from sqlalchemy.sql.visitors import replacement_traverse

from bot.feedback.search import matching
from bot.models import Customer, Feedback, FeedbackNote, FeedbackTopic, HandoffRequest, Merchant, Order, Transcript
from bot.shared.text import has_control_characters, without_control_characters

try:  # the shopper-side feedback conversation owns the topic names
    from bot.feedback.tagging import SENTIMENTS, TOPICS
except ImportError:  # pragma: no cover - only while that module is being written
    SENTIMENTS = ("positive", "neutral", "negative")
    TOPICS = ()

PAGE_SIZE = 25
COUNT_CAP = 1_000
EXPORT_BATCH_SIZE = 500
MAX_QUERY_CHARS = 200
MAX_NOTE_CHARS = 2000
# From this many matches on, SQLite finds a page by walking ix_feedback_created_at_id (see inbox_page).
IN_ORDER_THRESHOLD = 1_000
# A note with the same text by the same merchant on the same feedback within this window is one note
# submitted twice (a double click, two tabs, a retried request), not a second note.
NOTE_REPEAT_WINDOW = timedelta(seconds=10)
STATUSES = ("new", "in_progress", "done")
KINDS = ("csat", "nps")
# The channels feedback arrives on (channels/*.py names; "rest" is Rasa's developer channel).
CHANNELS = ("widget", "telegram", "instagram", "rest")
SCALES: Dict[str, Tuple[int, int]] = {"csat": (1, 5), "nps": (0, 10)}
SCORE_RANGE = (0, 10)  # either scale, when no kind is chosen
# Score bands across both scales: low is CSAT 1–2 and NPS detractors (0–6), medium CSAT 3 and NPS passives
# (7–8), high CSAT 4–5 (what the CSAT score counts as satisfied) and NPS promoters (9–10).
BANDS: Dict[str, Dict[str, Tuple[int, int]]] = {
    "low": {"csat": (1, 2), "nps": (0, 6)},
    "medium": {"csat": (3, 3), "nps": (7, 8)},
    "high": {"csat": (4, 5), "nps": (9, 10)},
}
# An int column on PostgreSQL: a larger id cannot exist and must not reach the query.
MAX_ID = 2**31 - 1
_CURSOR = re.compile(r"^(\d{1,17})_(\d{1,10})$")
# Control characters other than tab, line feed and carriage return (a textarea sends CR LF). PostgreSQL refuses
# NUL in text outright, so none of them may reach a query: a search or note holding one is refused, said so.


class InboxError(ValueError):
    """A status or note the inbox cannot accept; the message is for the merchant."""


@dataclass(frozen=True)
class FilterError:
    """One query parameter that could not be used, and why (for the page to show)."""

    param: str
    value: str
    message: str


@dataclass(frozen=True)
class Cursor:
    """A position in the inbox's order (created_at desc, id desc): the row a page starts after."""

    created_at: datetime
    id: int

    @property
    def token(self) -> str:
        """The cursor in a URL: microseconds since the epoch and the id (no characters that need quoting)."""
        delta = self.created_at.astimezone(timezone.utc) - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{micros}_{self.id}"

    @classmethod
    def parse(cls, token: str) -> Optional["Cursor"]:
        found = _CURSOR.match(token or "")
        if not found or int(found.group(2)) > MAX_ID:
            return None
        try:
            moment = _EPOCH + timedelta(microseconds=int(found.group(1)))
        except OverflowError:
            return None
        return cls(moment, int(found.group(2)))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class InboxFilter:
    """What the inbox shows; every field optional. `from_params` reads it from a query string."""

    date_from: Optional[date] = None  # inclusive, UTC
    date_to: Optional[date] = None  # inclusive, UTC
    channel: Optional[str] = None
    kind: Optional[str] = None
    band: Optional[str] = None  # low | medium | high (BANDS)
    score_min: Optional[int] = None
    score_max: Optional[int] = None
    sentiment: Optional[str] = None
    topic: Optional[str] = None
    with_comment: bool = False
    status: Optional[str] = None
    query: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Tuple["InboxFilter", List[FilterError]]:
        """The filter in `params` (a request's query); a value that cannot be used is left out of the filter
        and reported, so the page can say so rather than fail."""
        errors: List[FilterError] = []

        def text(name: str) -> str:
            return str(params.get(name) or "").strip()

        def bad(name: str, message: str) -> None:
            errors.append(FilterError(name, without_control_characters(text(name)), message))

        def day(name: str, label: str) -> Optional[date]:
            if not text(name):
                return None
            try:
                return date.fromisoformat(text(name))
            except ValueError:
                bad(name, f"“{label}” must be a date written YYYY-MM-DD.")
                return None

        def choice(name: str, allowed: Sequence[str], label: str) -> Optional[str]:
            if text(name) and text(name) not in allowed:
                bad(name, f"{label} must be one of: {', '.join(allowed)}.")
                return None
            return text(name) or None

        def score(name: str, label: str, low: int, high: int) -> Optional[int]:
            number = _integer(text(name)) if text(name) else None
            if text(name) and (number is None or not low <= number <= high):
                bad(name, f"“{label}” must be a whole number from {low} to {high}.")
                return None
            return number

        date_from, date_to = day("from", "From"), day("to", "To")
        if date_from is not None and date_to is not None and date_from > date_to:
            bad("to", "“To” must not be before “From”.")
            date_to = None
        channel = choice("channel", CHANNELS, "Channel")
        kind = choice("kind", KINDS, "Kind")
        band = choice("band", tuple(BANDS), "Score band")
        sentiment = choice("sentiment", SENTIMENTS, "Sentiment")
        status = choice("status", STATUSES, "Status")
        topic = choice("topic", TOPICS, "Topic")
        low, high = SCALES[kind] if kind else SCORE_RANGE
        score_min, score_max = score("score_min", "Score from", low, high), score("score_max", "Score to", low, high)
        if score_min is not None and score_max is not None and score_min > score_max:
            bad("score_max", "“Score to” must not be below “Score from”.")
            score_max = None
        with_comment = text("with_comment") in ("1", "on", "true", "yes")
        if text("with_comment") and not with_comment and text("with_comment") not in ("0", "off", "false", "no"):
            bad("with_comment", "“With a comment” must be 1 or 0.")
        # Every other parameter is a choice, a date or a number, which a NUL cannot pass for; the search is text.
        query = text("q")
        if has_control_characters(query, allow_line_breaks=True):
            bad("q", "The search must not contain control characters such as NUL.")
            query = ""
        elif len(query) > MAX_QUERY_CHARS:
            bad("q", f"The search must be at most {MAX_QUERY_CHARS} characters.")
            query = ""
        return cls(date_from, date_to, channel, kind, band, score_min, score_max, sentiment, topic, with_comment,
                   status, query), errors

    def to_params(self) -> Dict[str, str]:
        """The filter as query parameters (the inverse of `from_params`), for links that keep it."""
        params = {
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "channel": self.channel or "",
            "kind": self.kind or "",
            "band": self.band or "",
            "score_min": "" if self.score_min is None else str(self.score_min),
            "score_max": "" if self.score_max is None else str(self.score_max),
            "sentiment": self.sentiment or "",
            "topic": self.topic or "",
            "with_comment": "1" if self.with_comment else "",
            "status": self.status or "",
            "q": self.query,
        }
        return {name: value for name, value in params.items() if value}

    @property
    def is_empty(self) -> bool:
        return not self.to_params()


@dataclass(frozen=True)
class PageRequest:
    """Which page: the first, the one older than a cursor, or the one newer than a cursor. `number` is only
    what the page is called ("page 3"); the cursor decides what it holds."""

    older_than: Optional[Cursor] = None
    newer_than: Optional[Cursor] = None
    number: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Tuple["PageRequest", List[FilterError]]:
        errors: List[FilterError] = []
        number_text = str(params.get("page") or "").strip()
        number = _integer(number_text) if number_text else 1
        if number is None or not 1 <= number <= MAX_ID:
            errors.append(FilterError("page", number_text, "The page must be a whole number from 1."))
            number = 1
        cursors: Dict[str, Optional[Cursor]] = {}
        for name in ("older", "newer"):
            token = str(params.get(name) or "").strip()
            cursors[name] = Cursor.parse(token) if token else None
            if token and cursors[name] is None:
                errors.append(FilterError(name, token, "That page link is not valid; showing the newest."))
        older, newer = cursors["older"], cursors["newer"]
        if older is not None and newer is not None:
            errors.append(FilterError("newer", str(params.get("newer")),
                                      "A page link is either older or newer; showing the older one."))
            newer = None
        if older is None and newer is None:
            number = 1  # without a cursor it is the first page, whatever it was called
        return cls(older, newer, number), errors


def score_band(kind: str, score: int) -> Optional[str]:
    """low | medium | high (BANDS) for a score on its kind's scale; None when it is off the scale."""
    for band, scales in BANDS.items():
        low, high = scales.get(kind, (1, 0))
        if low <= score <= high:
            return band
    return None


@dataclass(frozen=True)
class InboxRow:
    id: int
    created_at: datetime
    channel: str
    customer_id: Optional[int]
    customer_name: Optional[str]
    customer_email: Optional[str]
    kind: str
    score: int
    sentiment: Optional[str]
    topics: List[str]
    comment: Optional[str]
    status: str

    @property
    def band(self) -> Optional[str]:
        return score_band(self.kind, self.score)


@dataclass(frozen=True)
class InboxPage:
    rows: List[InboxRow]
    number: int
    older: Optional[Cursor]  # where the next (older) page starts, if there is one
    newer: Optional[Cursor]  # where the previous (newer) page ends, if this is not the first page
    total: int  # matching feedback, counted up to COUNT_CAP
    total_capped: bool  # there are more than `total`

    @property
    def first_position(self) -> int:
        """The 1-based position of the first row in the whole list (exact while pages are walked in order)."""
        return (self.number - 1) * PAGE_SIZE + 1 if self.rows else 0


@dataclass(frozen=True)
class Turn:
    role: str  # shopper | bot
    text: str
    at: Optional[datetime]
    # What the bot sent with it, as stored (bot/feedback/transcripts.py): buttons {"title", "url"?} and
    # product cards {"title", "subtitle"?, "image_url"?, "buttons"?}.
    buttons: Tuple[Mapping[str, Any], ...] = ()
    cards: Tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Note:
    id: int
    author: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class OrderSummary:
    id: int
    external_id: str
    total: object  # Decimal
    currency: str
    placed_at: datetime


@dataclass(frozen=True)
class HandoffSummary:
    id: int
    status: str
    requested_at: datetime
    closed_at: Optional[datetime]
    closed_by: Optional[str]


@dataclass(frozen=True)
class FeedbackDetail:
    id: int
    created_at: datetime
    updated_at: datetime
    channel: str
    sender_id: str
    kind: str
    score: int
    comment: Optional[str]
    sentiment: Optional[str]
    topics: List[str]
    status: str
    goodwill_points: int
    customer_id: Optional[int]
    customer_name: Optional[str]
    customer_email: Optional[str]
    order: Optional[OrderSummary]
    handoff: Optional[HandoffSummary]
    transcript_id: Optional[int]
    transcript_reason: Optional[str]
    transcript_redacted: bool
    turns: List[Turn]
    transcript_language: Optional[str] = None  # the shopper's language when not English ("fr")
    notes: List[Note] = field(default_factory=list)

    @property
    def band(self) -> Optional[str]:
        return score_band(self.kind, self.score)


@dataclass(frozen=True)
class NoteOutcome:
    note: Note
    created: bool  # False: the same note was already there (a repeated submit)


@dataclass(frozen=True)
class ExportRow:
    id: int
    created_at: datetime
    channel: str
    customer_email: Optional[str]
    order: Optional[str]  # the store's order number
    kind: str
    score: int
    sentiment: Optional[str]
    topics: List[str]
    status: str
    comment: Optional[str]
    turns: List[Turn]
    notes: List[Note]


def inbox_page(session: Session, inbox_filter: InboxFilter, page: PageRequest = PageRequest()) -> InboxPage:
    """One page of feedback matching `inbox_filter`, newest first (created_at desc, id desc)."""
    conditions = _conditions(session, inbox_filter)
    total, capped = _count(session, conditions)
    in_order = _walks_in_order(session, total)
    order_key = tuple_(Feedback.created_at, Feedback.id)
    if page.newer_than is not None and page.older_than is None:
        rows = _rows(session, conditions, [order_key > (page.newer_than.created_at, page.newer_than.id)],
                     ascending=True, limit=PAGE_SIZE + 1, in_order=in_order)
        if len(rows) > PAGE_SIZE:
            rows = list(reversed(rows[:PAGE_SIZE]))
            return InboxPage(rows, max(page.number, 2), _cursor(rows[-1]), _cursor(rows[0]), total, capped)
        # Reached the newest: show the first page whole rather than the few rows left above the cursor.
        page = PageRequest()
    after = [order_key < (page.older_than.created_at, page.older_than.id)] if page.older_than is not None else []
    rows = _rows(session, conditions, after, ascending=False, limit=PAGE_SIZE + 1, in_order=in_order)
    older = _cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None
    rows = rows[:PAGE_SIZE]
    first = page.older_than is None
    newer = None if first or not rows else _cursor(rows[0])
    return InboxPage(rows, 1 if first else max(page.number, 2), older, newer, total, capped)


def _walks_in_order(session: Session, total: int) -> bool:
    """Whether to find rows by walking the order index (`total`: the matches, counted up to COUNT_CAP).

    SQLite has no statistics to choose by, and left alone it collects every match of a filter index or the
    search and sorts them: slow when most rows match — and an export, which asks for the next batch after
    each one, would collect and sort them all again for every batch. When many match, walking the order index
    and stopping at a page's (or batch's) worth finds them quickly, and the batches of an export together walk
    the index once; when few match, collecting and sorting them is quick."""
    return total >= IN_ORDER_THRESHOLD and session.get_bind().dialect.name == "sqlite"


def _cursor(row: InboxRow) -> Cursor:
    return Cursor(row.created_at, row.id)


def _rows(session: Session, conditions: Sequence[ColumnElement], position: Sequence[ColumnElement], *,
          ascending: bool, limit: int, in_order: bool) -> List[InboxRow]:
    """Rows matching `conditions` from `position` (a keyset bound) on. `in_order` (SQLite only): the filters
    are kept from using their indexes, so the only way left is along the order index."""
    if in_order:
        conditions = [_without_index(condition) for condition in conditions]
    order = (Feedback.created_at.asc(), Feedback.id.asc()) if ascending else \
        (Feedback.created_at.desc(), Feedback.id.desc())
    statement = (
        select(Feedback.id, Feedback.created_at, Feedback.channel, Feedback.customer_id, Customer.first_name,
               Customer.last_name, Customer.email, Feedback.kind, Feedback.score, Feedback.sentiment,
               Feedback.topics, Feedback.comment, Feedback.status)
        .outerjoin(Customer, Customer.id == Feedback.customer_id)
        .where(*conditions, *position)
        .order_by(*order)
        .limit(limit)
    )
    return [
        InboxRow(row.id, row.created_at, row.channel, row.customer_id, _name(row.first_name, row.last_name),
                 row.email, row.kind, row.score, row.sentiment, list(row.topics or []), row.comment, row.status)
        for row in session.execute(statement)
    ]


def _without_index(condition: ColumnElement) -> ColumnElement:
    """`condition` with feedback's own columns as +column, which SQLite cannot look up in an index (its
    documented way to turn an index off for one term). created_at stays: a date range on it narrows the walk
    along the order index itself. Subqueries' tables are left as they are."""
    table = Feedback.__table__

    def replace(element: object) -> Optional[ColumnElement]:
        # The ORM's columns are annotated copies of the table's: compare by table and name.
        if isinstance(element, ColumnClause) and element.table is table and element.name != "created_at":
            return UnaryExpression(element, operator=custom_op("+"), type_=element.type)
        return None

    return replacement_traverse(condition, {}, replace)


def _count(session: Session, conditions: Sequence[ColumnElement]) -> Tuple[int, bool]:
    capped = select(Feedback.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = int(session.execute(select(func.count()).select_from(capped)).scalar_one())
    return min(total, COUNT_CAP), total > COUNT_CAP


def _conditions(session: Session, inbox_filter: InboxFilter) -> List[ColumnElement]:
    found: List[ColumnElement] = []
    if inbox_filter.date_from is not None:
        found.append(Feedback.created_at >= _start_of(inbox_filter.date_from))
    if inbox_filter.date_to is not None:
        if inbox_filter.date_to < date.max:
            found.append(Feedback.created_at < _start_of(inbox_filter.date_to + timedelta(days=1)))
    if inbox_filter.channel:
        found.append(Feedback.channel == inbox_filter.channel)
    if inbox_filter.kind:
        found.append(Feedback.kind == inbox_filter.kind)
    if inbox_filter.band:
        found.append(or_(*(
            and_(Feedback.kind == kind, Feedback.score.between(low, high))
            for kind, (low, high) in BANDS[inbox_filter.band].items()
        )))
    if inbox_filter.score_min is not None:
        found.append(Feedback.score >= inbox_filter.score_min)
    if inbox_filter.score_max is not None:
        found.append(Feedback.score <= inbox_filter.score_max)
    if inbox_filter.sentiment:
        found.append(Feedback.sentiment == inbox_filter.sentiment)
    if inbox_filter.topic:
        tagged = select(FeedbackTopic.feedback_id).where(FeedbackTopic.topic == inbox_filter.topic)
        found.append(Feedback.id.in_(tagged))
    if inbox_filter.with_comment:
        found.append(and_(Feedback.comment.isnot(None), Feedback.comment != ""))
    if inbox_filter.status:
        found.append(Feedback.status == inbox_filter.status)
    if inbox_filter.query:
        clause = matching(session.get_bind().dialect.name, inbox_filter.query)
        if clause is not None:
            found.append(clause)
    return found


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _integer(text: str) -> Optional[int]:
    return int(text) if re.fullmatch(r"[+-]?\d{1,12}", text) else None


def _name(first: Optional[str], last: Optional[str]) -> Optional[str]:
    name = " ".join(part for part in (first, last) if part)
    return name or None


def feedback_detail(session: Session, feedback_id: int) -> Optional[FeedbackDetail]:
    """A feedback with its customer, order, handoff, transcript and notes (oldest first); None if unknown."""
    if not 0 < feedback_id <= MAX_ID:
        return None
    feedback = session.get(Feedback, feedback_id)
    if feedback is None:
        return None
    customer = session.get(Customer, feedback.customer_id) if feedback.customer_id is not None else None
    order = session.get(Order, feedback.order_id) if feedback.order_id is not None else None
    handoff = session.get(HandoffRequest, feedback.handoff_request_id) \
        if feedback.handoff_request_id is not None else None
    transcript = session.get(Transcript, feedback.transcript_id) if feedback.transcript_id is not None else None
    return FeedbackDetail(
        id=feedback.id,
        created_at=feedback.created_at,
        updated_at=feedback.updated_at,
        channel=feedback.channel,
        sender_id=feedback.sender_id,
        kind=feedback.kind,
        score=feedback.score,
        comment=feedback.comment,
        sentiment=feedback.sentiment,
        topics=list(feedback.topics or []),
        status=feedback.status,
        goodwill_points=feedback.goodwill_points,
        customer_id=feedback.customer_id,
        customer_name=_name(customer.first_name, customer.last_name) if customer else None,
        customer_email=customer.email if customer else None,
        order=OrderSummary(order.id, order.external_id, order.total, order.currency, order.placed_at)
        if order else None,
        handoff=HandoffSummary(handoff.id, handoff.status, handoff.requested_at, handoff.closed_at,
                               handoff.closed_by) if handoff else None,
        transcript_id=transcript.id if transcript else None,
        transcript_reason=transcript.reason if transcript else None,
        transcript_redacted=bool(transcript.redacted) if transcript else False,
        turns=_turns(transcript.turns) if transcript else [],
        transcript_language=transcript.language if transcript else None,
        notes=_notes(session, [feedback.id]).get(feedback.id, []),
    )


def _turns(stored: object) -> List[Turn]:
    turns: List[Turn] = []
    for turn in stored if isinstance(stored, list) else []:
        if isinstance(turn, dict):
            turns.append(Turn(str(turn.get("role") or ""), str(turn.get("text") or ""), _moment(turn.get("at")),
                              _items(turn.get("buttons")), _items(turn.get("cards"))))
    return turns


def _items(stored: object) -> Tuple[Mapping[str, Any], ...]:
    return tuple(item for item in stored if isinstance(item, dict) and item.get("title")) \
        if isinstance(stored, list) else ()


def _moment(value: object) -> Optional[datetime]:
    """A turn's ISO 8601 time; None when it is missing or unreadable (shown without a time, not an error)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _notes(session: Session, feedback_ids: Sequence[int]) -> Dict[int, List[Note]]:
    found: Dict[int, List[Note]] = {}
    if not feedback_ids:
        return found
    for row in session.execute(
        select(FeedbackNote.id, FeedbackNote.feedback_id, FeedbackNote.author, FeedbackNote.text,
               FeedbackNote.created_at)
        .where(FeedbackNote.feedback_id.in_(list(feedback_ids)))
        .order_by(FeedbackNote.feedback_id, FeedbackNote.created_at, FeedbackNote.id)
    ):
        found.setdefault(row.feedback_id, []).append(Note(row.id, row.author, row.text, row.created_at))
    return found


def set_status(session: Session, feedback_id: int, status: str, now: datetime) -> Optional[Feedback]:
    """Move a feedback to `status` (new | in_progress | done); None if there is no such feedback."""
    if status not in STATUSES:
        raise InboxError(f"The status must be one of: {', '.join(STATUSES)}.")
    if not 0 < feedback_id <= MAX_ID:
        return None
    feedback = session.get(Feedback, feedback_id, with_for_update=True)
    if feedback is None:
        return None
    if feedback.status != status:
        feedback.status = status
        feedback.updated_at = now
    return feedback


def add_note(session: Session, feedback_id: int, merchant: Merchant, text: str, now: datetime) -> Optional[NoteOutcome]:
    """Add an internal note by `merchant`; None if there is no such feedback. The same text by the same
    merchant within NOTE_REPEAT_WINDOW is the note already there (created=False), even when both requests
    arrive at once: the feedback row is locked first (FOR UPDATE on PostgreSQL; SQLite's write transaction
    holds the database lock already)."""
    cleaned = (text or "").strip()
    if not cleaned:
        raise InboxError("A note cannot be empty.")
    if len(cleaned) > MAX_NOTE_CHARS:
        raise InboxError(f"A note can be at most {MAX_NOTE_CHARS:,} characters (this one has {len(cleaned):,}).")
    if has_control_characters(cleaned, allow_line_breaks=True):
        raise InboxError("A note cannot contain control characters such as NUL.")
    if not 0 < feedback_id <= MAX_ID:
        return None
    locked = session.execute(select(Feedback.id).where(Feedback.id == feedback_id).with_for_update()).scalar()
    if locked is None:
        return None
    repeated = session.execute(
        select(FeedbackNote)
        .where(FeedbackNote.feedback_id == feedback_id, FeedbackNote.merchant_id == merchant.id,
               FeedbackNote.text == cleaned, FeedbackNote.created_at >= now - NOTE_REPEAT_WINDOW)
        .order_by(FeedbackNote.id.desc())
        .limit(1)
    ).scalar()
    if repeated is not None:
        return NoteOutcome(Note(repeated.id, repeated.author, repeated.text, repeated.created_at), created=False)
    note = FeedbackNote(feedback_id=feedback_id, merchant_id=merchant.id, author=merchant.email, text=cleaned,
                        created_at=now)
    session.add(note)
    session.flush()
    return NoteOutcome(Note(note.id, note.author, note.text, note.created_at), created=True)


def export_batch(session: Session, inbox_filter: InboxFilter, after: Optional[Cursor],
                 batch_size: int = EXPORT_BATCH_SIZE) -> List[ExportRow]:
    """Up to `batch_size` export rows older than `after` (all from the newest when None), newest first,
    with their transcripts and notes read for the whole batch at once. The rows are found the way inbox_page
    finds a page (`_walks_in_order`): on SQLite, when many match, along the order index from `after`."""
    conditions = _conditions(session, inbox_filter)
    # Counted (up to COUNT_CAP) for every batch, as each has its own transaction; not at all on PostgreSQL,
    # whose planner chooses by itself.
    if session.get_bind().dialect.name == "sqlite" and _walks_in_order(session, _count(session, conditions)[0]):
        conditions = [_without_index(condition) for condition in conditions]
    if after is not None:
        conditions.append(tuple_(Feedback.created_at, Feedback.id) < (after.created_at, after.id))
    rows = session.execute(
        select(Feedback.id, Feedback.created_at, Feedback.channel, Customer.email, Order.external_id,
               Feedback.kind, Feedback.score, Feedback.sentiment, Feedback.topics, Feedback.status,
               Feedback.comment, Feedback.transcript_id)
        .outerjoin(Customer, Customer.id == Feedback.customer_id)
        .outerjoin(Order, Order.id == Feedback.order_id)
        .where(*conditions)
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(batch_size)
    ).all()
    transcript_ids = [row.transcript_id for row in rows if row.transcript_id is not None]
    turns: Dict[int, List[Turn]] = {}
    if transcript_ids:
        for transcript_id, stored in session.execute(
            select(Transcript.id, Transcript.turns).where(Transcript.id.in_(transcript_ids))
        ):
            turns[transcript_id] = _turns(stored)
    notes = _notes(session, [row.id for row in rows])
    return [
        ExportRow(row.id, row.created_at, row.channel, row.email, row.external_id, row.kind, row.score,
                  row.sentiment, list(row.topics or []), row.status, row.comment,
                  turns.get(row.transcript_id, []) if row.transcript_id is not None else [],
                  notes.get(row.id, []))
        for row in rows
    ]


def export_rows(session: Session, inbox_filter: InboxFilter,
                batch_size: int = EXPORT_BATCH_SIZE) -> Iterator[ExportRow]:
    """Every feedback matching `inbox_filter`, newest first, read `batch_size` at a time (keyset), so memory
    stays the same whatever the number of rows."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    after: Optional[Cursor] = None
    while True:
        batch = export_batch(session, inbox_filter, after, batch_size)
        yield from batch
        if len(batch) < batch_size:
            return
        after = Cursor(batch[-1].created_at, batch[-1].id)

