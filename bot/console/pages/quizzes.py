"""The quizzes page (owners): for each product quiz, starts, completions, drop-off by question and the
median time to complete over a chosen period (bot/console/insights.py quiz_reports)."""
from __future__ import annotations

from datetime import timedelta
from typing import Optional

from aiohttp import web

from bot import clock
from bot.app_context import SETTINGS
from bot.console.charts import Bar, bar_chart
from bot.console.insights import quiz_reports
from bot.console.page import PREFIX, in_store, int_param, owner_only, render
from bot.shared.text import human_duration

QUIZ_DAYS = (7, 30, 90, 365)
DEFAULT_QUIZ_DAYS = 30


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/quizzes", quizzes_page, name="console_quizzes")


def _percent(share: Optional[float]) -> str:
    """A share from 0 to 1 as a percentage."""
    return "–" if share is None else f"{share * 100:.0f}%"


@owner_only
async def quizzes_page(request: web.Request) -> web.StreamResponse:
    days = int_param(request, "days", DEFAULT_QUIZ_DAYS, 1, 3660)
    if days not in QUIZ_DAYS:
        days = DEFAULT_QUIZ_DAYS
    since = clock.now() - timedelta(days=days)
    directory = request.app[SETTINGS].quizzes_dir
    found = await in_store(request, lambda session: quiz_reports(session, directory, since))
    quizzes = []
    for stats in found.reports:
        chart = bar_chart(
            chart_id=f"chart-quiz-{stats.quiz_id}", title=f"{stats.title}: shoppers reaching each question",
            description=f"Of {stats.starts:,} starts, how many reached each question: "
                        + "; ".join(f"{q.text} {q.reached:,} (dropped {q.dropped:,})" for q in stats.questions) + ".",
            bars=[Bar(f"Q{index}", question.reached, "funnel") for index, question in enumerate(stats.questions, 1)],
            empty="No runs started in this period.",
        )
        quizzes.append({"stats": stats, "chart": chart})
    return render(request, "quizzes.html", {
        "quizzes": quizzes, "days": days, "day_choices": QUIZ_DAYS, "problem": found.problem,
        "percent": _percent, "duration": human_duration,
    })
