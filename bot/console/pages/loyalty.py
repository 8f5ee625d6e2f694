"""The loyalty page (owners): members by VIP tier, points issued, redeemed and outstanding, what a point is
worth (bot/console/insights.py loyalty_overview)."""
from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from bot.app_context import PROGRAM
from bot.console.charts import Bar, bar_chart
from bot.console.insights import loyalty_overview
from bot.console.page import PREFIX, in_store, owner_only, render


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/loyalty", loyalty_page, name="console_loyalty")


@owner_only
async def loyalty_page(request: web.Request) -> web.StreamResponse:
    program = request.app[PROGRAM]()
    overview = await in_store(request, lambda session: loyalty_overview(session, program))
    rows = [{"name": tier.name, "customers": tier.customers,
             "note": "" if tier.known else "not a tier of the program now"} for tier in overview.tiers]
    if overview.not_evaluated:
        rows.append({"name": "not evaluated yet", "customers": overview.not_evaluated,
                     "note": "no tier computed: no order since joining"})
    members = max(overview.members, 1)
    chart = bar_chart(
        chart_id="chart-tiers", title="Members by VIP tier",
        description="Members in each tier: " + ", ".join(f"{row['name']} {row['customers']:,}" for row in rows) + ".",
        bars=[Bar(row["name"], row["customers"], "tier") for row in rows], empty="No members yet.",
    )
    rate = overview.point_value
    return render(request, "loyalty.html", {
        "overview": overview, "program": program, "tier_rows": rows, "members_base": members, "tier_chart": chart,
        "money": program.money, "minus": lambda points: f"−{points:,}" if points else "0",
        "point_rate": (f"{program.currency_symbol}{rate.per_point.quantize(Decimal('0.0001')).normalize():f}"
                       if rate is not None else ""),
    })
