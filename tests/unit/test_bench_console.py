"""The console benchmark's seeding at a small size, and one whole run against the real web app in a child
process: the data must be what the feedback service would have written (search_text, the full-text index,
transcripts linked to their feedback, topic rows matching the topics), and the report complete.
No timing is asserted: the figures depend on the machine."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select, text

from bench import console
from bot.db import Database
from bot.feedback.search import matching, search_text_for
from bot.models import ChannelIdentity, Customer, Feedback, FeedbackNote, FeedbackTopic, HandoffRequest, Order, Transcript

RECORDS = 200
CUSTOMERS = 40


def test_seeding_writes_linked_searchable_feedback(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "console.db"
    progress = []
    result = console.seed_database(path, RECORDS, CUSTOMERS, progress=progress.append)

    assert result["rows"]["feedback"] == result["rows"]["transcripts"] == RECORDS
    assert result["rows"]["customers"] == result["rows"]["channel_identities"] == CUSTOMERS
    assert progress and progress[-1].startswith(f"seeding {RECORDS:,}/{RECORDS:,} feedback (100%)")
    database = Database(console.sqlite_url(path))
    try:
        with database.session() as session:
            def count(model) -> int:
                return session.execute(select(func.count()).select_from(model)).scalar_one()

            assert (count(Feedback), count(Transcript), count(Customer), count(ChannelIdentity)) == \
                (RECORDS, RECORDS, CUSTOMERS, CUSTOMERS)
            assert count(Order) == result["rows"]["orders"] > 0
            assert count(FeedbackTopic) == result["rows"]["feedback_topics"] > 0
            assert count(HandoffRequest) == result["rows"]["handoff_requests"]
            assert count(FeedbackNote) == result["rows"]["feedback_notes"]

            rows = session.execute(select(Feedback, Transcript).join(Transcript, Transcript.id == Feedback.transcript_id)
                                   .order_by(Feedback.id)).all()
            assert len(rows) == RECORDS, "every feedback has its transcript"
            topics = Counter()
            for feedback, transcript in rows:
                # The transcript is the same conversation, taken when the feedback was given.
                assert (transcript.channel, transcript.sender_id, transcript.customer_id, transcript.order_id) == \
                    (feedback.channel, feedback.sender_id, feedback.customer_id, feedback.order_id)
                assert transcript.created_at == feedback.created_at and transcript.reason == "feedback"
                assert 8 <= len(transcript.turns) <= 20
                assert [turn["role"] for turn in transcript.turns[:2]] == ["shopper", "bot"]
                assert all(turn["at"] <= transcript.turns[-1]["at"] for turn in transcript.turns)
                assert feedback.search_text == search_text_for(feedback.comment, transcript.turns)
                assert str(feedback.score) in [turn["text"] for turn in transcript.turns]
                low, high = (0, 10) if feedback.kind == "nps" else (1, 5)
                assert low <= feedback.score <= high
                assert (feedback.sentiment is None) == (feedback.comment is None) == (feedback.topics == [])
                topics.update(feedback.topics)
            stored_topics = Counter(dict(session.execute(
                select(FeedbackTopic.topic, func.count()).group_by(FeedbackTopic.topic)).all()))
            assert stored_topics == topics, "the topic rows are the feedback's topics"
            assert {feedback.channel for feedback, _ in rows} >= {"widget", "telegram", "instagram"}
            assert {feedback.kind for feedback, _ in rows} == {"csat", "nps"}
            assert {feedback.status for feedback, _ in rows} == {"new", "in_progress", "done"}
            assert any(feedback.customer_id is None for feedback, _ in rows), "some guests"
            days = (rows[-1][0].created_at - rows[0][0].created_at).days
            assert days > 300 and rows[-1][0].created_at <= console.HISTORY_END, "spread over a year, ids in time order"

            # The full-text index was filled by migration 0010's triggers: it finds what a scan of the text finds.
            indexed = session.execute(text("SELECT count(*) FROM feedback_search_docsize")).scalar_one()
            assert indexed == RECORDS
            for word in (console.COMMON_WORD, "parcel", "sorry"):
                # As FTS5 splits text, and as the inbox searches: the (last) word is a prefix.
                expected = sum(1 for feedback, _ in rows
                               if any(token.startswith(word) for token in re.findall(r"\w+", feedback.search_text)))
                found = session.execute(select(func.count()).select_from(Feedback)
                                        .where(matching("sqlite", word))).scalar_one()
                assert found == expected > 0, word
    finally:
        database.dispose()


def test_generation_is_deterministic() -> None:
    def first_batch() -> list:
        generator = console.Generator(50, 10)
        generator.customer_rows()
        batch = next(generator.batches(50))
        return [(row["created_at"], row["score"], row["comment"], row["sender_id"]) for row in batch.feedback]

    assert first_batch() == first_batch()


def test_a_small_run_measures_every_scenario_and_export(tmp_path: Path) -> None:
    config = console.Config(records=300, customers=60, requests=3, warm_up=1, export_rows=100,
                            db_path=tmp_path / "bench" / "console.db")
    json_path = tmp_path / "console.json"

    report = console.run(config, json_path)

    assert set(report["scenarios"]) == {"inbox", "inbox_filtered", "search_common", "search_rare", "deep_page",
                                        "last_page", "transcript"}
    for name, stats in report["scenarios"].items():
        assert stats["count"] == 3 and stats["errors"] == 0, (name, stats)
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["max_ms"]
        assert stats["server_p50_ms"] is not None, "the app's own request log was read"
    assert report["scenarios"]["inbox"]["matches"] == 300
    assert 0 < report["scenarios"]["inbox_filtered"]["matches"] < 300
    exports = report["exports"]
    assert exports["all"]["status"] == 200 and exports["all"]["rows"] == exports["all"]["server_rows"] == 300
    assert 100 <= exports["window"]["rows"] == exports["window"]["server_rows"] < 300
    assert exports["all"]["bytes"] > exports["window"]["bytes"] > 0
    assert exports["all"]["rss_before_mib"] > 0 and exports["all"]["rss_peak_mib"] >= exports["all"]["rss_before_mib"]
    assert {row["result"] for row in report["targets"]} <= {"PASS", "MISS"}
    assert json.loads(json_path.read_text())["exports"]["all"]["rows"] == 300
    assert "CSV export" in console.format_report(report)

    again = console.run(console.Config(**{**config.__dict__, "skip_seed": True}), json_path)
    assert again["seed"]["carried_over"] is True and again["exports"]["all"]["rows"] == 300
