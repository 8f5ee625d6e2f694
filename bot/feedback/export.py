"""The feedback export as CSV text: the header, batches of rows (bot/feedback/inbox.py `export_batch`) and
the file's name. The console streams what these return.

Reward and friend codes in comments and transcripts are masked but their last 4 (bot/checkout.py
mask_codes_in): the file leaves the console, and a code in it must not be spendable. A transcript line shows
the product cards and buttons the shopper saw after the bot's text.

Every cell a spreadsheet would read as a formula — one starting with = + - @, or a tab or carriage return
that some spreadsheets skip before looking — gets a leading apostrophe, so a shopper's comment like
`=HYPERLINK("http://evil.example", "click")` stays text in Excel, LibreOffice and Google Sheets.
"""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timezone
from typing import Iterable, List, Optional, Sequence

from bot.checkout import mask_codes_in
from bot.feedback.inbox import ExportRow, Note, Turn

COLUMNS: Sequence[str] = (
    "id", "created_at", "channel", "customer_email", "order", "kind", "score", "sentiment", "topics", "status",
    "comment", "transcript", "notes",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Excel reads a UTF-8 file as its local code page unless the file starts with a byte order mark.
BOM = "\ufeff"


def safe_cell(value: object) -> str:
    """A cell's text, with an apostrophe in front when a spreadsheet would otherwise run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def header() -> str:
    """The first line of the file (with the byte order mark)."""
    return BOM + _lines([list(COLUMNS)])


def rows_csv(rows: Iterable[ExportRow]) -> str:
    """CSV lines for `rows`, in the order of COLUMNS."""
    return _lines([_cells(row) for row in rows])


def filename(today: date) -> str:
    return f"feedback-{today.isoformat()}.csv"


def _cells(row: ExportRow) -> List[str]:
    values: List[object] = [
        row.id, _iso(row.created_at), row.channel, row.customer_email, row.order, row.kind, row.score,
        row.sentiment, "; ".join(row.topics), row.status, mask_codes_in(row.comment), transcript_text(row.turns),
        notes_text(row.notes),
    ]
    return [safe_cell(value) for value in values]


def transcript_text(turns: Iterable[Turn]) -> str:
    """One line per turn: `role [time]: text`, then `[cards: title — subtitle; …]` and `[buttons: a | b]`
    when the bot sent some; codes masked."""
    lines = []
    for turn in turns:
        line = f"{turn.role} [{_iso(turn.at)}]:" + (f" {turn.text}" if turn.text else "")
        if turn.cards:
            line += " [cards: " + "; ".join(
                str(card["title"]) + (f" — {card['subtitle']}" if card.get("subtitle") else "") for card in turn.cards) + "]"
        if turn.buttons:
            line += " [buttons: " + " | ".join(str(button["title"]) for button in turn.buttons) + "]"
        lines.append(mask_codes_in(line))
    return "\n".join(lines)


def notes_text(notes: Iterable[Note]) -> str:
    """One line per note, oldest first: `author [time]: text`."""
    return "\n".join(f"{note.author} [{_iso(note.created_at)}]: {note.text}" for note in notes)


def _iso(moment: Optional[datetime]) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lines(rows: List[List[str]]) -> str:
    buffer = io.StringIO()
    # Every cell quoted: multi-line comments and transcripts read back the same in any spreadsheet.
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()
