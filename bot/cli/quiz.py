"""`python -m bot quiz stats|check|emails`: quiz analytics for the merchant, the quiz files checked against the
store, and the email addresses shoppers gave with their consent.

The quiz files are QUIZZES_DIR/*.yml (default data/quizzes), checked against the catalog in the store's
database (tags and SKUs), as the bot loads them.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError
from bot.config_files import ConfigError
from bot.shared.text import human_duration

DEFAULT_DAYS = 30
QUESTION_WIDTH = 40  # question texts are cut to this in the drop-off table


def _date(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-06-01") from None
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of days")
    return int(text)


def _quiz_files(directory: Path) -> List[Path]:
    if not directory.is_dir():
        raise ConfigError(directory, "", "is not a folder of quiz files (set QUIZZES_DIR)")
    return sorted(list(directory.glob("*.yml")) + list(directory.glob("*.yaml")))


def _load_each(session: Session, directory: Path) -> Tuple[Dict[str, Any], List[ConfigError], int]:
    """Every quiz file that loads against the store's catalog (by id), the errors of the others, the number
    of products in the catalog."""
    from bot.models import Product
    from bot.quiz.definition import CatalogVocabulary, load_quiz

    products = session.execute(select(Product.sku, Product.tags)).all()
    vocabulary = CatalogVocabulary.of(products)
    quizzes: Dict[str, Any] = {}
    errors: List[ConfigError] = []
    for path in _quiz_files(directory):
        try:
            quiz = load_quiz(path, vocabulary)
        except ConfigError as error:
            errors.append(error)
            continue
        if quiz.id in quizzes:
            errors.append(ConfigError(path, "id", f"quiz id {quiz.id!r} is also used by {quizzes[quiz.id].source}"))
            continue
        quizzes[quiz.id] = quiz
    return quizzes, errors, len(products)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _quiz_check(_: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.settings import get_settings

    directory = get_settings().quizzes_dir
    database = get_database()
    database.create_schema()
    with database.session() as session:
        quizzes, errors, product_count = _load_each(session, directory)
    for quiz in quizzes.values():
        print(f"[quiz] {quiz.id}: OK — {len(quiz.questions)} questions, {quiz.results} picks ({_display(quiz.source)})")
    for error in errors:
        print(f"[quiz] error: {error}")
    if not product_count:
        print("[quiz] the store has no products: run `.venv/bin/python -m bot catalog import` (or `seed --demo`) first")
    total = len(quizzes) + len(errors)
    print(f"[quiz] {total} quiz file{'s' if total != 1 else ''} in {_display(directory)} checked against "
          f"{product_count:,} products: {len(quizzes)} OK, {len(errors)} with errors")
    return 1 if errors else 0


def _quiz_stats(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.quiz.stats import quiz_ids_with_runs, quiz_stats
    from bot.settings import get_settings

    if args.since is not None:
        since, period = args.since, f"since {args.since:%Y-%m-%d}"
    else:
        days = args.days or DEFAULT_DAYS
        since, period = clock.now() - timedelta(days=days), f"last {days} day{'s' if days != 1 else ''}"
    database = get_database()
    database.create_schema()
    with database.session() as session:
        quizzes, errors, _ = _load_each(session, get_settings().quizzes_dir)
        for error in errors:
            print(f"warning: {error} (its runs are shown by question and option ids; see `.venv/bin/python -m bot quiz check`)",
                  file=sys.stderr)
        with_runs = quiz_ids_with_runs(session)
        if args.quiz is not None:
            if args.quiz not in quizzes and args.quiz not in with_runs:
                known = ", ".join(sorted(set(quizzes) | set(with_runs))) or "none"
                raise CommandError(f"no quiz {args.quiz!r} (no quiz file and no runs; quizzes: {known})")
            ids = [args.quiz]
        else:
            ids = sorted(quizzes) + [quiz_id for quiz_id in with_runs if quiz_id not in quizzes]
        reports = [quiz_stats(session, quizzes.get(quiz_id, quiz_id), since=since) for quiz_id in ids]
    if args.json:
        print(json.dumps({"period": period, "quizzes": [report.to_dict() for report in reports]}, indent=2,
                         ensure_ascii=False))
        return 0
    if not reports:
        print(f"[quiz] no quizzes: no quiz files in {_display(get_settings().quizzes_dir)} and no runs")
        return 0
    print("\n\n".join(format_stats(report, period) for report in reports))
    return 0


# ---------------------------------------------------------------------------------------------
# The text report


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _question_label(stats: Any, question: Any) -> str:
    return question.text if question.known or not stats.defined else f"{question.question_id} (not in the quiz)"


def _option_label(stats: Any, answer: Any) -> str:
    return answer.label if answer.known or not stats.defined else f"{answer.option_id} (not in the quiz)"


def format_stats(stats: Any, period: str) -> str:
    """A QuizStats as the compact text report `quiz stats` prints."""
    lines = [
        f"{stats.title} ({stats.quiz_id if stats.defined else 'no valid quiz file'}) — {period}",
        f"  starts {stats.starts:,} · completions {stats.completions:,} ({_percent(stats.completion_rate)}) · "
        f"in progress {stats.in_progress:,} · restarted {stats.abandoned:,} · "
        f"median time {human_duration(stats.median_time_to_complete)}",
        f"  emails captured {stats.emails_captured:,} · points awarded {stats.points_awarded:,}",
    ]
    if not stats.starts:
        lines.append("  no runs in this period")
        return "\n".join(lines)

    labels = [_cut(_question_label(stats, question), QUESTION_WIDTH) for question in stats.questions]
    width = max([len("Drop-off by question") - 2] + [len(label) for label in labels])
    lines.append(f"{'Drop-off by question':<{width + 2}}  {'reached':>7}  {'answered':>8}  {'skipped':>7}  {'dropped':>7}")
    for label, question in zip(labels, stats.questions):
        rate = f"  ({_percent(question.drop_off_rate)})" if question.dropped else ""
        lines.append(f"  {label:<{width}}  {question.reached:>7,}  {question.answered:>8,}  {question.skipped:>7,}  "
                     f"{question.dropped:>7,}{rate}")

    answer_lines = []
    for question in stats.questions:
        chosen = [f"{_option_label(stats, answer)} "
                  f"{answer.count:,} ({_percent(answer.share)})" for answer in question.answers if answer.count]
        if question.skipped:
            chosen.append(f"skipped {question.skipped:,}")
        if chosen:
            answer_lines.append(f"  {_question_label(stats, question)} — " + " · ".join(chosen))
    if answer_lines:
        lines.append("Answers")
        lines.extend(answer_lines)

    if stats.products:
        lines.append("Most recommended")
        sku_width = max(len(product.sku) for product in stats.products)
        title_width = max(len(product.title or "") for product in stats.products)
        number_width = len(str(len(stats.products)))
        for rank, product in enumerate(stats.products, 1):
            times = f"{product.times:,} time{'s' if product.times != 1 else ''}"
            lines.append(f"  {rank:>{number_width}}. {product.sku:<{sku_width}} {product.title or '':<{title_width}}  "
                         f"{times} ({product.top:,} as top pick)")
    return "\n".join(lines)


EMAIL_COLUMNS = ("email", "quiz", "consent_at", "consent_text", "picks", "customer_id", "channel")


def _quiz_emails(args: argparse.Namespace) -> int:
    """The addresses shoppers gave with their consent, as CSV for the merchant's email tool."""
    import csv

    from bot.db import get_database
    from bot.models import QuizRun

    database = get_database()
    database.create_schema()
    query = select(QuizRun).where(QuizRun.email.is_not(None), QuizRun.consent_at.is_not(None))
    if args.quiz is not None:
        query = query.where(QuizRun.quiz_id == args.quiz)
    if args.since is not None:
        query = query.where(QuizRun.consent_at >= args.since)
    writer = csv.writer(sys.stdout)
    writer.writerow(EMAIL_COLUMNS)
    count = 0
    with database.session() as session:
        for run in session.execute(query.order_by(QuizRun.consent_at, QuizRun.id)).scalars():
            writer.writerow([run.email, run.quiz_id, run.consent_at.isoformat(), run.consent_text or "",
                             " ".join(pick.get("sku", "") for pick in run.results or []),
                             run.customer_id if run.customer_id is not None else "", run.channel])
            count += 1
    print(f"[quiz] {count} address{'es' if count != 1 else ''} with recorded consent", file=sys.stderr)
    return 0


def add_quiz_commands(commands: Any) -> None:
    quiz = commands.add_parser("quiz", help="product quizzes: statistics and checks").add_subparsers(
        dest="quiz_command", required=True
    )
    stats = quiz.add_parser(
        "stats", help="starts, completions, drop-off per question, answers and most recommended products",
        description="Statistics of the quiz runs started in the period (default: the last 30 days). Without "
                    "--quiz: every quiz with a file or with runs. Exit code 0; 1: no such quiz.",
    )
    stats.add_argument("--quiz", metavar="ID", help="one quiz (its id, e.g. room-makeover)")
    period = stats.add_mutually_exclusive_group()
    period.add_argument("--days", type=_days, metavar="N", help=f"runs started in the last N days (default {DEFAULT_DAYS})")
    period.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="runs started on or after this day (UTC)")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(handler=_quiz_stats)
    quiz.add_parser(
        "check", help="validate every quiz file against the store's catalog",
        description="Load every quiz file (QUIZZES_DIR, default data/quizzes) against the tags and SKUs of the "
                    "products in the store. Exit code 0: all OK; 1: some file has an error (file and place shown).",
    ).set_defaults(handler=_quiz_check)
    emails = quiz.add_parser(
        "emails", help="the email addresses given with consent after a quiz, as CSV",
        description="One CSV row per address a shopper gave with their consent after a quiz: the address, the "
                    "quiz, when and to which words they agreed, the products recommended. Exit code 0.",
    )
    emails.add_argument("--quiz", metavar="ID", help="one quiz (its id)")
    emails.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="consent given on or after this day (UTC)")
    emails.set_defaults(handler=_quiz_emails)
