"""The referrals page (owners): totals and the funnel from clicks to rewards, the referrals held for review
and the latest ones, and approving or rejecting one (bot/advocacy/referrals.py) — from this page or from
the moderation page, which it returns to."""
from __future__ import annotations

from typing import Any, Dict, Optional

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.codes import ReferralError
from bot.advocacy.referrals import (
    ReferralStateError, UnknownReferral, approve_referral, list_referrals, referral_totals, reject_referral,
)
from bot.app_context import PROGRAM
from bot.console.charts import Bar, bar_chart
from bot.console.insights import referral_funnel
from bot.audit import record
from bot.console.page import ID, MERCHANT, PREFIX, has_nul, in_store, owner_only, render, small_int
from bot.console.pages.moderation import MAX_ACTOR_CHARS, moderation_view
from bot.log import get_logger
from bot.models import Merchant, Referral

log = get_logger(__name__)

PAGE_SIZE = 50
MAX_REASON_CHARS = 255
# Where a referral decision made on another page returns to.
REFERRAL_BACK = {"referrals": f"{PREFIX}/referrals", "moderation": f"{PREFIX}/moderation"}


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/referrals", referrals_page, name="console_referrals")
    app.router.add_post(PREFIX + "/referrals/{id:" + ID + "}/{decision:approve|reject}", referral_decide)


def _referral_actor(request: web.Request) -> str:
    """Who decided a referral: ReferralDecision.actor is "rules" or "merchant:<who>" (as the CLI records it)."""
    return f"merchant:{request[MERCHANT].email}"[:MAX_ACTOR_CHARS]


async def _referrals_view(request: web.Request, *, problem: Optional[str] = None, status: int = 200) -> web.Response:
    decided_id = small_int(request.query.get("decided", ""))

    def work(session: Session) -> Dict[str, Any]:
        return {
            "totals": referral_totals(session),
            "funnel": referral_funnel(session),
            "queue": list_referrals(session, "review", limit=PAGE_SIZE),
            "recent": list_referrals(session, None, limit=20),
            "decided": session.get(Referral, decided_id) if decided_id is not None else None,
        }

    data = await in_store(request, work)
    totals, funnel = data["totals"], data["funnel"]
    joined = sum(totals.by_status.values())
    steps = [("Link clicks", totals.clicks), ("Friends joined", joined), ("First orders", funnel.with_order),
             ("Rewarded", totals.by_status.get("rewarded", 0))]
    chart = bar_chart(
        chart_id="chart-referral-funnel", title="Referral funnel",
        description="From clicks on advocates' links to rewarded referrals: "
                    + ", ".join(f"{name} {value:,}" for name, value in steps)
                    + ". Friends can also join by a code typed in chat, without a click.",
        bars=[Bar(name, value, "funnel") for name, value in steps], empty="No referral activity yet.",
    )
    return render(request, "referrals.html", {
        **data, "joined": joined, "funnel_chart": chart, "problem": problem,
    }, status=status)


@owner_only
async def referrals_page(request: web.Request) -> web.StreamResponse:
    return await _referrals_view(request)


@owner_only
async def referral_decide(request: web.Request) -> web.StreamResponse:
    referral_id = int(request.match_info["id"])
    approve = request.match_info["decision"] == "approve"
    form = await request.post()
    back = str(form.get("back", "referrals"))
    back = back if back in REFERRAL_BACK else "referrals"
    reason = " ".join(str(form.get("reason", "")).split())[:MAX_REASON_CHARS]
    if has_nul(reason):
        log.info("console.referral_refused", referral_id=referral_id, status=400)
        view = moderation_view if back == "moderation" else _referrals_view
        return await view(request, problem=f"Referral #{referral_id}: the reason must not contain NUL characters",
                          status=400)
    program = request.app[PROGRAM]()
    actor = _referral_actor(request)

    merchant_id = request[MERCHANT].id

    def work(session: Session) -> Any:
        if approve:
            referral = approve_referral(session, program, referral_id, actor, clock.now())
        else:
            referral = reject_referral(session, program, referral_id, actor, reason, clock.now())
        record(session, session.get(Merchant, merchant_id), "referral_decided", f"referral {referral_id}",
               ("approved" if approve else f"rejected: {reason}") + f" (now {referral.status})", clock.now())
        return referral

    try:
        referral = await in_store(request, work, write=True)
    except ReferralError as error:
        status = 404 if isinstance(error, UnknownReferral) else 409 if isinstance(error, ReferralStateError) else 400
        log.info("console.referral_refused", referral_id=referral_id, status=status)
        view = moderation_view if back == "moderation" else _referrals_view
        return await view(request, problem=f"Referral #{referral_id}: {error}", status=status)
    log.info("console.referral_decided", referral_id=referral.id, status=referral.status,
             merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(f"{REFERRAL_BACK[back]}?decided={referral.id}" if back == "referrals"
                           else f"{REFERRAL_BACK[back]}?decided=referral-{referral.id}")
