"""Segments' one home: resolve a segment reference to its filter, count and list its members (with a reason
line each), save, list and delete named segments, and the built-ins.

Every entry point calls these: the console's Segments page, `python -m bot segments …`,
`python -m bot predict scores --segment`, and campaigns (`resolve` then `member_ids`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, List, Optional, Union

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot import clock
from bot.loyalty.program import Program, get_program
from bot.models import SavedSegment
from bot.segments.built_in import BuiltInSegment, built_in_segments
from bot.segments.conditions import FilterContext, SegmentError
from bot.segments.facts import MemberFacts, load_facts
from bot.segments.filters import SegmentFilter

MAX_NAME = 100
MAX_DESCRIPTION = 1_000


class UnknownSegment(LookupError):
    """No built-in key, saved id or saved name is the reference given."""


@dataclass(frozen=True)
class Segment:
    """A built-in (`key` set, `id` None) or saved segment (`id` set)."""

    ref: str  # what names it on the CLI and in the console: the built-in key or the saved id
    name: str
    description: str
    filter: SegmentFilter
    id: Optional[int] = None
    key: Optional[str] = None

    @property
    def built_in(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class Member:
    customer_id: int
    email: Optional[str]
    name: str
    reason: str
    facts: MemberFacts


def context(session: Session, *, now: Optional[datetime] = None, program: Optional[Program] = None) -> FilterContext:
    program = program or get_program()
    return FilterContext(now or clock.now(), program.expiry_inactive_months, session.get_bind().dialect.name)


def member_ids(session: Session, segment_filter: SegmentFilter, *, now: Optional[datetime] = None,
               program: Optional[Program] = None) -> Select:
    """SELECT of every member's customer id (one column, "id", unordered): to count, page, join or feed to
    an IN."""
    return segment_filter.member_ids(context(session, now=now, program=program))


def count(session: Session, segment_filter: SegmentFilter, *, now: Optional[datetime] = None,
          program: Optional[Program] = None) -> int:
    ids = member_ids(session, segment_filter, now=now, program=program).subquery()
    return int(session.execute(select(func.count()).select_from(ids)).scalar_one())


def members(session: Session, segment_filter: SegmentFilter, *, limit: int = 20, after_id: int = 0,
            now: Optional[datetime] = None, program: Optional[Program] = None) -> List[Member]:
    """Up to `limit` members by id after `after_id`, each with the reason they match."""
    program = program or get_program()
    filter_context = context(session, now=now, program=program)
    found = member_ids(session, segment_filter, now=filter_context.now, program=program).subquery()
    ids = list(session.execute(
        select(found.c.id).where(found.c.id > after_id).order_by(found.c.id).limit(limit)).scalars())
    facts = load_facts(session, ids, program.expiry_inactive_months)
    return [Member(customer_id, facts[customer_id].email, facts[customer_id].name,
                   reason(segment_filter, facts[customer_id], filter_context), facts[customer_id])
            for customer_id in ids]


def all_members(session: Session, segment_filter: SegmentFilter, *, batch: int = 1_000,
                now: Optional[datetime] = None, program: Optional[Program] = None) -> Iterator[Member]:
    """Every member in id order, read a batch at a time (the CLI's listing)."""
    after = 0
    while True:
        page = members(session, segment_filter, limit=batch, after_id=after, now=now, program=program)
        yield from page
        if len(page) < batch:
            return
        after = page[-1].customer_id


def reason(segment_filter: SegmentFilter, facts: MemberFacts, filter_context: FilterContext) -> str:
    """Why this member matches: each condition's part, in the filter's order, said once."""
    parts: List[str] = []
    for condition in segment_filter.conditions:
        part = condition.reason(facts, filter_context)
        if part and part not in parts:
            parts.append(part)
    if not parts:  # every customer: say who they are in loyalty terms
        parts = [f"{facts.tier} tier", f"{facts.points:,} points",
                 f"{facts.order_count:,} order{'' if facts.order_count == 1 else 's'}"]
    return "; ".join(parts)


# --- named segments: built-in and saved -----------------------------------------------------------------------

def _saved(row: SavedSegment) -> Segment:
    return Segment(str(row.id), row.name, row.description, SegmentFilter.from_json(row.filter), id=row.id)


def _built_in(segment: BuiltInSegment) -> Segment:
    return Segment(segment.key, segment.name, segment.description, segment.filter, key=segment.key)


def list_segments(session: Session, *, program: Optional[Program] = None) -> List[Segment]:
    """The built-ins first, then the saved segments by name."""
    built_ins = [_built_in(segment) for segment in built_in_segments(program or get_program()).values()]
    saved = session.execute(select(SavedSegment).order_by(SavedSegment.name, SavedSegment.id)).scalars()
    return built_ins + [_saved(row) for row in saved]


def find(session: Session, ref: Union[str, int], *, program: Optional[Program] = None) -> Segment:
    """The segment a reference names: a built-in key, a saved segment's id, or its name (case-insensitive)."""
    text = str(ref).strip()
    built_in = built_in_segments(program or get_program()).get(text)
    if built_in is not None:
        return _built_in(built_in)
    row = None
    if text.isascii() and text.isdigit() and len(text) <= 9:
        row = session.get(SavedSegment, int(text))
    if row is None and text:
        row = session.execute(
            select(SavedSegment).where(func.lower(SavedSegment.name) == text.lower()).limit(1)).scalar_one_or_none()
    if row is None:
        raise UnknownSegment(f"no segment {text!r}: give a built-in key ({', '.join(built_in_segments(program or get_program()))}), "
                             "a saved segment's id or its name")
    return _saved(row)


def resolve(session: Session, ref: Union[str, int], *, program: Optional[Program] = None) -> SegmentFilter:
    """The filter of the segment `ref` names (see `find`); UnknownSegment when there is none."""
    return find(session, ref, program=program).filter


def save_segment(session: Session, name: str, segment_filter: SegmentFilter, *, by: str,
                 description: str = "", now: Optional[datetime] = None,
                 program: Optional[Program] = None) -> Segment:
    """Save under `name`: a new segment, or the saved one of that name (case-insensitive) gets the new filter."""
    name = " ".join((name or "").split())
    if not name or len(name) > MAX_NAME:
        raise SegmentError(f"a segment's name has 1 to {MAX_NAME} characters")
    if name.isdigit():
        raise SegmentError("a segment's name cannot be only digits (those name segments by id)")
    if name in built_in_segments(program or get_program()):
        raise SegmentError(f"{name!r} is a built-in segment's key; pick another name")
    description = (description or "").strip()[:MAX_DESCRIPTION]
    when = now or clock.now()
    row = session.execute(
        select(SavedSegment).where(func.lower(SavedSegment.name) == name.lower()).limit(1)).scalar_one_or_none()
    if row is None:
        row = SavedSegment(name=name, description=description, filter=segment_filter.to_json(), created_by=by,
                           created_at=when, updated_at=when)
        session.add(row)
    else:
        row.filter, row.description, row.updated_at = segment_filter.to_json(), description or row.description, when
    session.flush()
    return _saved(row)


def delete_segment(session: Session, ref: Union[str, int], *, program: Optional[Program] = None) -> Segment:
    """Delete a saved segment; built-ins cannot be deleted (SegmentError)."""
    segment = find(session, ref, program=program)
    if segment.id is None:
        raise SegmentError(f"{segment.name!r} is built in and cannot be deleted")
    session.delete(session.get(SavedSegment, segment.id))
    session.flush()
    return segment
