"""Full-text search in feedback (bot/feedback/search.py): the same answers on SQLite (FTS5) and PostgreSQL
(tsvector), whatever a merchant types."""
from __future__ import annotations

from typing import List

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.feedback.search import fold, matching, query_words, search_text_for
from bot.models import Feedback
from tests.unit.test_feedback_inbox import add_feedback


def _found(db: Database, query: str) -> List[str]:
    with db.session() as session:
        clause = matching(session.get_bind().dialect.name, query)
        assert clause is not None
        rows = session.execute(select(Feedback.comment).where(clause).order_by(Feedback.id)).scalars()
        return list(rows)


def test_text_is_folded_to_lower_case_without_accents() -> None:
    assert fold("Café CRÈME Ångström") == "cafe creme angstrom"
    assert search_text_for("Déjà vu", [{"role": "shopper", "text": "Naïve"}]) == "deja vu\nnaive"
    assert query_words("  Délai   de LIVRAISON!! ") == ["delai", "de", "livraison"]
    assert query_words("a\x00b") == ["a", "b"]
    assert query_words("-- '' \"\" *") == []


def test_accents_match_either_way_on_both_databases(any_db: Database) -> None:
    with any_db.session(write=True) as session:
        add_feedback(session, comment="Le café était froid")
        add_feedback(session, comment="Coffee arrived cold")
    assert _found(any_db, "cafe") == ["Le café était froid"]
    assert _found(any_db, "CAFÉ était") == ["Le café était froid"]
    assert _found(any_db, "cof") == ["Coffee arrived cold"], "the last word is a prefix"
    assert _found(any_db, "coffee cold") == ["Coffee arrived cold"]
    assert _found(any_db, "coffee hot") == []


@pytest.mark.parametrize("query", [
    '"', "'", "*", "NEAR(a b)", "a OR b", "NOT", "-cold", "col:umn", "^x", "\\", "a & b | !c", "🙂 cold",
    "x" * 300, "café " * 20,
])
def test_odd_queries_never_break_the_search(any_db: Database, query: str) -> None:
    with any_db.session(write=True) as session:
        add_feedback(session, comment="Coffee arrived cold")
    with any_db.session() as session:
        clause = matching(session.get_bind().dialect.name, query)
        if clause is not None:
            session.execute(select(Feedback.id).where(clause)).all()
