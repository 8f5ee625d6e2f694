"""A segment's members as CSV (the console's owner-only export and `python -m bot segments members`): one
row per member with their loyalty figures and the reason they match. Cells a spreadsheet would run as a
formula are quoted with an apostrophe, as in the feedback export (bot/feedback/export.py)."""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Dict, Iterable, List, Sequence

from bot.feedback.export import BOM, safe_cell
from bot.segments.service import Member

COLUMNS: Sequence[str] = (
    "id", "email", "name", "tier", "points", "orders", "last_order_at", "lifetime_spend", "probability", "reason",
)


def header(*, bom: bool = True) -> str:
    return (BOM if bom else "") + _lines([list(COLUMNS)])


def rows_csv(members: Iterable[Member]) -> str:
    return _lines([[safe_cell(value) for value in row_values(member).values()] for member in members])


def row_values(member: Member) -> Dict[str, Any]:
    facts = member.facts
    return {
        "id": member.customer_id,
        "email": member.email or "",
        "name": member.name,
        "tier": facts.tier,
        "points": facts.points,
        "orders": facts.order_count,
        "last_order_at": facts.last_order_at.strftime("%Y-%m-%d") if facts.last_order_at else "",
        "lifetime_spend": f"{facts.spend:.2f}",
        "probability": "" if facts.probability is None else f"{facts.probability:.4f}",
        "reason": member.reason,
    }


def filename(name: str, today: date) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")[:40] or "segment"
    return f"segment-{slug}-{today.isoformat()}.csv"


def _lines(rows: List[List[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()
