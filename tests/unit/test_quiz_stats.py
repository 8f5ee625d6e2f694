"""Quiz analytics (bot/quiz/stats.py) and `python -m bot quiz stats|check` against a real SQLite store."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bot.cli import main
from bot.db import get_database
from bot.models import QuizRun
from bot.quiz.definition import CatalogVocabulary, load_quiz
from bot.quiz.stats import quiz_ids_with_runs, quiz_stats
from bot.settings import PROJECT_ROOT, reset_settings

DEMO_QUIZ = PROJECT_ROOT / "data" / "quizzes" / "room-makeover.yml"
NOW = datetime(2026, 6, 15, 12, tzinfo=timezone.utc)  # the `clock` fixture's time
CONSENT = datetime(2026, 6, 10, 9, 5, tzinfo=timezone.utc)


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _quiz_run(started: datetime, status: str = "in_progress", answers: dict = None, current: str = None,
              results: list = (), seconds: int = None, quiz_id: str = "room-makeover", **extra) -> QuizRun:
    return QuizRun(
        quiz_id=quiz_id, channel="rest", sender_id=f"s-{started.timestamp()}-{status}", status=status,
        stage="done" if status == "completed" else "questions", answers=answers or {}, current_question=current,
        results=[{"sku": sku, "score": 10 - position, "reasons": []} for position, sku in enumerate(results)],
        started_at=started, updated_at=started,
        completed_at=started + timedelta(seconds=seconds) if seconds is not None else None, **extra,
    )


def _runs() -> list:
    day = NOW - timedelta(days=5)
    return [
        # Completed, extras skipped, email with consent.
        _quiz_run(day, "completed", {"room": ["office"], "work-style": ["standing"], "materials": ["oak", "walnut"],
                                     "extras": [], "budget": ["under-1000"]},
                  results=["OE-DK-001", "OE-OC-001", "OE-GONE-1"], seconds=100, points_awarded=25,
                  email="ana@example.com", consent_text="Yes", consent_at=CONSENT),
        _quiz_run(day, "completed", {"room": ["living"], "living-space": ["small"], "materials": ["oak"],
                                     "extras": ["light"], "budget": ["any"]},
                  results=["OE-SO-001", "OE-LT-001"], seconds=200, points_awarded=25),
        # Materials skipped; consent recorded but no address given: not an email captured.
        _quiz_run(day, "completed", {"room": ["office"], "work-style": ["seated"], "materials": [],
                                     "extras": ["nothing"], "budget": ["under-400"]},
                  results=["OE-OC-001", "OE-DK-001"], seconds=300, points_awarded=25, consent_at=CONSENT),
        _quiz_run(day, "in_progress", {"room": ["office"]}, current="work-style"),  # dropped at work-style
        _quiz_run(day, "in_progress", {"room": ["living"], "living-space": ["roomy"]}, current="materials"),
        _quiz_run(day, "abandoned", {}, current="room"),  # restarted at the first question
        # An option and a question the quiz file no longer has.
        _quiz_run(day, "in_progress", {"room": ["garden"], "colour": ["red"]}, current="colour"),
        # Outside the last 30 days.
        _quiz_run(NOW - timedelta(days=40), "completed", {"room": ["dining"], "dining-size": ["many"],
                                                           "materials": ["walnut"], "extras": ["nothing"],
                                                           "budget": ["statement"]},
                  results=["OE-TB-002"], seconds=60, points_awarded=25),
        # A quiz without a file.
        _quiz_run(day, "completed", {"q1": ["a"]}, results=["OE-DK-002"], seconds=30, quiz_id="old-quiz"),
    ]


@pytest.fixture()
def store(environment, capsys, clock):
    """The demo shop seeded, the quiz runs above inserted."""
    assert main(["seed", "--demo"]) == 0
    capsys.readouterr()
    with get_database().session(write=True) as session:
        session.add_all(_runs())
    return get_database()


def _demo_quiz(session):
    from bot.models import Product
    from sqlalchemy import select

    return load_quiz(DEMO_QUIZ, CatalogVocabulary.of(session.execute(select(Product.sku, Product.tags)).all()))


def test_stats_count_the_window(store) -> None:
    with store.session() as session:
        quiz = _demo_quiz(session)
        stats = quiz_stats(session, quiz, since=NOW - timedelta(days=30))
        assert quiz_ids_with_runs(session) == ["old-quiz", "room-makeover"]
    assert (stats.quiz_id, stats.title) == ("room-makeover", "Room makeover")
    assert (stats.starts, stats.completions, stats.in_progress, stats.abandoned) == (7, 3, 3, 1)
    assert stats.completion_rate == pytest.approx(3 / 7)
    assert stats.median_time_to_complete == timedelta(seconds=200)
    assert (stats.emails_captured, stats.points_awarded) == (1, 75)

    table = {q.question_id: (q.reached, q.answered, q.skipped, q.dropped) for q in stats.questions}
    assert [q.question_id for q in stats.questions] == [
        "room", "living-space", "work-style", "dining-size", "materials", "extras", "budget", "colour"]
    assert table == {
        "room": (7, 6, 0, 1), "living-space": (2, 2, 0, 0), "work-style": (3, 2, 0, 1), "dining-size": (0, 0, 0, 0),
        "materials": (4, 2, 1, 1), "extras": (3, 2, 1, 0), "budget": (3, 3, 0, 0), "colour": (1, 1, 0, 1),
    }
    room = stats.question("room")
    assert room.text == "Which room are we making over?" and room.known
    assert room.drop_off_rate == pytest.approx(1 / 7)
    assert [(a.label, a.count, round(a.share, 4), a.known) for a in room.answers] == [
        ("Home office", 3, 0.5, True), ("Living room", 2, 0.3333, True), ("garden", 1, 0.1667, False),
        ("Dining room", 0, 0.0, True)]
    assert [(a.option_id, a.count, a.share) for a in stats.question("materials").answers if a.count] == [
        ("oak", 2, 1.0), ("walnut", 1, 0.5)]  # multi-choice: shares of the runs that answered
    colour = stats.question("colour")
    assert (colour.text, colour.known, colour.drop_off_rate) == ("colour", False, 1.0)
    assert stats.question("dining-size").drop_off_rate == 0.0

    assert [(p.sku, p.title, p.times, p.top) for p in stats.products] == [
        ("OE-DK-001", "Rise standing desk", 2, 1), ("OE-OC-001", "Task office chair", 2, 1),
        ("OE-SO-001", "Harbour 3-seat sofa", 1, 1), ("OE-GONE-1", None, 1, 0), ("OE-LT-001", "Ember floor lamp", 1, 0)]


def test_stats_by_id_other_windows_and_no_runs(store) -> None:
    with store.session() as session:
        everything = quiz_stats(session, "room-makeover")
        early = quiz_stats(session, "room-makeover", until=NOW - timedelta(days=30))
        empty = quiz_stats(session, _demo_quiz(session), since=NOW)
        unknown = quiz_stats(session, "no-such-quiz")
    assert (everything.starts, everything.completions, everything.points_awarded) == (8, 4, 100)
    assert everything.median_time_to_complete == timedelta(seconds=150)
    # Without the file every question is a raw id, in id order.
    assert [(q.question_id, q.known) for q in everything.questions][:2] == [("budget", False), ("colour", False)]
    assert (early.starts, early.completions, early.median_time_to_complete) == (1, 1, timedelta(seconds=60))
    assert [p.sku for p in early.products] == ["OE-TB-002"]

    for stats in (empty, unknown):
        assert (stats.starts, stats.completions, stats.completion_rate, stats.median_time_to_complete) == (0, 0, 0.0, None)
        assert (stats.emails_captured, stats.points_awarded, stats.products) == (0, 0, ())
    assert len(empty.questions) == 7 and all(q.reached == 0 and q.drop_off_rate == 0.0 for q in empty.questions)
    assert all(a.share == 0.0 for q in empty.questions for a in q.answers)
    assert unknown.questions == ()
    assert json.loads(json.dumps(empty.to_dict()))["completion_rate"] == 0.0


def test_stats_command_prints_the_report(store, capsys) -> None:
    code, out, err = _run(capsys, "quiz", "stats", "--quiz", "room-makeover")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Room makeover (room-makeover) — last 30 days"
    assert lines[1] == "  starts 7 · completions 3 (43%) · in progress 3 · restarted 1 · median time 3m 20s"
    assert lines[2] == "  emails captured 1 · points awarded 75"
    assert lines[3].split() == ["Drop-off", "by", "question", "reached", "answered", "skipped", "dropped"]
    assert lines[4].split()[-5:] == ["7", "6", "0", "1", "(14%)"] and lines[4].startswith("  Which room are we making over?  ")
    assert "  colour (not in the quiz)" in out
    assert all(len(row.split("  (")[0]) == len(lines[3]) for row in lines[4:12])  # columns under their headings
    assert ("  Which room are we making over? — Home office 3 (50%) · Living room 2 (33%) · "
            "garden (not in the quiz) 1 (17%)") in lines
    assert "  Anything else the room needs? Pick any. — Better lighting 1 (50%) · Just the main piece 1 (50%) · skipped 1" in lines
    assert "  1. OE-DK-001 Rise standing desk   2 times (1 as top pick)" in lines
    assert "  4. OE-GONE-1                      1 time (0 as top pick)" in lines

    code, out, _ = _run(capsys, "quiz", "stats", "--since", "2026-05-01")
    assert code == 0
    assert "Room makeover (room-makeover) — since 2026-05-01\n  starts 8 · completions 4 (50%)" in out
    assert "old-quiz (no valid quiz file) — since 2026-05-01\n  starts 1 · completions 1 (100%)" in out
    assert out.index("room-makeover") < out.index("old-quiz")  # quiz files first, then quizzes with runs only

    code, out, _ = _run(capsys, "quiz", "stats", "--quiz", "room-makeover", "--days", "1")
    assert code == 0 and "— last 1 day\n  starts 0 · completions 0 (0%)" in out and "no runs in this period" in out


def test_stats_command_json(store, capsys) -> None:
    code, out, _ = _run(capsys, "quiz", "stats", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["period"] == "last 30 days"
    by_id = {quiz["quiz_id"]: quiz for quiz in data["quizzes"]}
    assert list(by_id) == ["room-makeover", "old-quiz"]
    room = by_id["room-makeover"]
    assert {key: room[key] for key in ("starts", "completions", "completion_rate", "in_progress", "abandoned",
                                       "median_seconds_to_complete", "emails_captured", "points_awarded")} == {
        "starts": 7, "completions": 3, "completion_rate": 0.4286, "in_progress": 3, "abandoned": 1,
        "median_seconds_to_complete": 200.0, "emails_captured": 1, "points_awarded": 75}
    assert room["since"] == "2026-05-16T12:00:00+00:00" and room["until"] is None
    assert room["defined"] and not by_id["old-quiz"]["defined"]
    work = next(q for q in room["questions"] if q["id"] == "work-style")
    assert (work["reached"], work["answered"], work["skipped"], work["dropped"], work["drop_off_rate"]) == (3, 2, 0, 1, 0.3333)
    assert work["answers"][0] == {"id": "standing", "label": "Standing desk", "known": True, "count": 1, "share": 0.5}
    assert room["products"][0] == {"sku": "OE-DK-001", "title": "Rise standing desk", "times": 2, "top": 1}
    assert by_id["old-quiz"]["questions"][0]["answers"] == [
        {"id": "a", "label": "a", "known": False, "count": 1, "share": 1.0}]


def test_stats_command_refuses_bad_arguments(store, capsys) -> None:
    code, out, err = _run(capsys, "quiz", "stats", "--quiz", "nope")
    assert code == 1 and "no quiz 'nope'" in err and "old-quiz, room-makeover" in err
    for argv in (["--days", "0"], ["--since", "June"], ["--days", "3", "--since", "2026-05-01"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["quiz", "stats", *argv])
        assert exit_info.value.code == 2
    capsys.readouterr()


def _quiz_dir(tmp_path: Path, monkeypatch, *bad_tags: str) -> Path:
    directory = tmp_path / "quizzes"
    directory.mkdir()
    shutil.copy(DEMO_QUIZ, directory / "room-makeover.yml")
    for tag in bad_tags:
        data = yaml.safe_load(DEMO_QUIZ.read_text(encoding="utf-8"))
        data["id"] = "broken"
        data["questions"][0]["options"][0]["weights"]["tags"][tag] = 2
        (directory / "broken.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("QUIZZES_DIR", str(directory))
    reset_settings()
    return directory


def test_check_validates_every_quiz_against_the_store(environment, capsys, clock, tmp_path, monkeypatch) -> None:
    code, out, _ = _run(capsys, "quiz", "check")  # the store is empty: no tags, no SKUs
    assert code == 1 and "[quiz] error:" in out and "the store has no products" in out

    main(["seed", "--demo"])
    capsys.readouterr()
    code, out, _ = _run(capsys, "quiz", "check")
    assert code == 0
    assert "[quiz] room-makeover: OK — 7 questions, 3 picks" in out and "1 OK, 0 with errors" in out

    directory = _quiz_dir(tmp_path, monkeypatch, "lether")
    code, out, _ = _run(capsys, "quiz", "check")
    assert code == 1
    assert "[quiz] room-makeover: OK" in out
    assert (f"[quiz] error: {directory / 'broken.yml'}: questions[0].options[0].weights.tags.lether: unknown tag "
            "(not in the catalog or known_tags); did you mean 'leather'?") in out
    assert "2 quiz files" in out and "1 OK, 1 with errors" in out

    # Stats still run: the broken quiz's runs by raw ids, with a warning.
    with get_database().session(write=True) as session:
        session.add(_quiz_run(NOW - timedelta(days=1), "in_progress", {"room": ["office"]}, current="work-style",
                              quiz_id="broken"))
    code, out, err = _run(capsys, "quiz", "stats", "--quiz", "broken")
    assert code == 0 and "warning:" in err and "broken.yml" in err
    assert out.startswith("broken (no valid quiz file) — last 30 days\n  starts 1 ·")
    assert "\n  work-style  " in out and "(not in the quiz)" not in out  # every id is raw: no marks

    monkeypatch.setenv("QUIZZES_DIR", str(tmp_path / "missing"))
    reset_settings()
    code, _, err = _run(capsys, "quiz", "check")
    assert code == 2 and "missing" in err and "is not a folder" in err


def test_emails_lists_only_addresses_given_with_consent(store, capsys) -> None:
    code, out, err = _run(capsys, "quiz", "emails")
    assert code == 0
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0] == ["email", "quiz", "consent_at", "consent_text", "picks", "customer_id", "channel"]
    # one run has an address with consent; one has consent but no address; the others neither
    assert [row[:2] for row in rows[1:]] == [["ana@example.com", "room-makeover"]]
    assert rows[1][2] == CONSENT.isoformat() and rows[1][3] == "Yes" and rows[1][4] == "OE-DK-001 OE-OC-001 OE-GONE-1"
    assert err.strip() == "[quiz] 1 address with recorded consent"
    code, out, _ = _run(capsys, "quiz", "emails", "--since", "2026-06-11")
    assert code == 0 and out.strip().splitlines()[1:] == []
