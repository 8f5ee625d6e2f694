"""Full-text search in feedback: what is indexed (`search_text_for`) and how a query matches (`matching`).

The index is migration 0010's: an FTS5 table on SQLite, a GIN index on to_tsvector('simple', …) on
PostgreSQL. Both split text into words the same simple way, and accents are folded here in Python (the
'simple' configuration keeps them), so a query finds the same feedback on either: "cafe" finds "Café".
Every word of the query must occur (prefix match for the last one, as people type); punctuation is ignored,
so no query can reach the FTS or tsquery syntax.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, List, Mapping, Optional

from sqlalchemy import literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from bot.models import Feedback

MAX_QUERY_WORDS = 8
_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Lower case without accents: what is indexed and what is looked for."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def search_text_for(comment: Optional[str], turns: Iterable[Mapping[str, object]]) -> str:
    """What the search looks in: the comment and every turn of the transcript, folded."""
    parts: List[str] = [comment or ""]
    parts.extend(str(turn.get("text") or "") for turn in turns)
    return fold("\n".join(part for part in parts if part))


def query_words(query: str) -> List[str]:
    return _WORD.findall(fold((query or "").replace("\x00", " ")))[:MAX_QUERY_WORDS]


def matching(dialect_name: str, query: str) -> Optional[ColumnElement]:
    """A WHERE clause on Feedback for `query`, or None when it has no words to look for."""
    words = query_words(query)
    if not words:
        return None
    if dialect_name == "postgresql":
        # Each word as a quoted lexeme; the last one a prefix (:*). Lexemes are [a-z0-9_] only here.
        terms = [f"'{word}'" for word in words]
        terms[-1] += ":*"
        return text("to_tsvector('simple', feedback.search_text) @@ to_tsquery('simple', :search_query)") \
            .bindparams(search_query=" & ".join(terms))
    # FTS5: each word a quoted string, the last one a prefix; implicit AND between them.
    terms = [f'"{word}"' for word in words]
    terms[-1] += "*"
    ids = select(literal_column("rowid")).select_from(text("feedback_search")) \
        .where(text("feedback_search MATCH :search_query").bindparams(search_query=" ".join(terms)))
    return Feedback.id.in_(ids)
