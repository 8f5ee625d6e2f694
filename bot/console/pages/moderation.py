"""The moderation page (owners): reviews, photos and videos, social follows waiting for a decision and the
referrals held for review, and approving or rejecting an item (bot/advocacy/ moderation services)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.advocacy.content import moderate_submission
from bot.advocacy.moderation import ModerationError
from bot.advocacy.referrals import list_referrals
from bot.advocacy.reviews import moderate_review
from bot.advocacy.social import moderate_social_claim
from bot.app_context import PROGRAM
from bot.console.insights import QUEUE_MODELS, pending_queue, referrals_in_review
from bot.audit import record
from bot.console.page import ID, MERCHANT, PREFIX, error_page, has_nul, in_store, owner_only, render, small_int
from bot.log import get_logger
from bot.models import Merchant, Referral

log = get_logger(__name__)

PAGE_SIZE = 50
MAX_ACTOR_CHARS = 64  # moderated_by and ReferralDecision.actor
QUEUE_TITLES = {"reviews": "Reviews", "content": "Photos and videos", "social": "Social follows"}


# The audit log's words for a decision in each queue (bot/audit.py).
AUDIT_ACTIONS = {"reviews": "review_decided", "content": "content_decided", "social": "social_decided"}
AUDIT_SUBJECTS = {"reviews": "review", "content": "photo or video", "social": "follow claim"}


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/moderation", moderation_page, name="console_moderation")
    app.router.add_post(PREFIX + "/moderation/{queue:reviews|content|social}/{id:" + ID + "}/{decision:approve|reject}",
                        moderation_decide)


def _actor(request: web.Request) -> str:
    """Who decided a queued item, as its moderated_by records it: the merchant's e-mail."""
    return request[MERCHANT].email[:MAX_ACTOR_CHARS]


@dataclass(frozen=True)
class _Decided:
    what: str
    item_id: int
    status: str
    points: int


async def moderation_view(request: web.Request, *, problem: Optional[str] = None, status: int = 200) -> web.Response:
    decided = request.query.get("decided", "")

    def work(session: Session) -> Dict[str, Any]:
        queues = [pending_queue(session, name, PAGE_SIZE) for name in QUEUE_MODELS]
        flagged = list_referrals(session, "review", limit=PAGE_SIZE)
        what, _, number = decided.partition("-")
        item_id = small_int(number)
        notice = None
        if item_id is not None and what in (*QUEUE_MODELS, "referral"):
            item = session.get(Referral if what == "referral" else QUEUE_MODELS[what], item_id)
            if item is not None and item.status not in ("pending", "review", "joined"):
                notice = _Decided(what, item.id, item.status, item.points_awarded)
        return {"queues": queues, "flagged": flagged, "flagged_count": referrals_in_review(session), "notice": notice}

    data = await in_store(request, work)
    return render(request, "moderation.html", {
        **data, "titles": QUEUE_TITLES, "problem": problem, "safe_url": _safe_url,
    }, status=status)


def _safe_url(url: Any) -> Optional[str]:
    """A media URL to link to: https only (anything else is shown as text, never as a link)."""
    text = str(url or "")
    return text if text.startswith("https://") and not any(char.isspace() for char in text) else None


@owner_only
async def moderation_page(request: web.Request) -> web.StreamResponse:
    return await moderation_view(request)


@owner_only
async def moderation_decide(request: web.Request) -> web.StreamResponse:
    queue = request.match_info["queue"]
    item_id = int(request.match_info["id"])
    approve = request.match_info["decision"] == "approve"
    form = await request.post()
    note = " ".join(str(form.get("note" if approve else "reason", "")).split()) or None
    if has_nul(note):
        log.info("console.moderation_refused", queue=queue, item_id=item_id, status=400)
        field = "note" if approve else "reason"
        return await moderation_view(
            request, problem=f"{QUEUE_TITLES[queue]} #{item_id}: the {field} must not contain NUL characters.",
            status=400)
    program = request.app[PROGRAM]()
    decide = {"reviews": moderate_review, "content": moderate_submission, "social": moderate_social_claim}[queue]
    model = QUEUE_MODELS[queue]
    actor = _actor(request)

    merchant_id = request[MERCHANT].id

    def work(session: Session) -> Any:
        if session.get(model, item_id) is None:
            return None
        result = decide(session, program, item_id, approve=approve, actor=actor, note=note, now=clock.now())
        record(session, session.get(Merchant, merchant_id), AUDIT_ACTIONS[queue], f"{AUDIT_SUBJECTS[queue]} {item_id}",
               ("approved" if approve else "rejected") + (f": {note}" if note else "")
               + (f" ({result.points_awarded:,} points)" if result.points_awarded else ""), clock.now())
        return result

    def decided_already(session: Session) -> bool:
        item = session.get(model, item_id)
        return item is not None and item.status != "pending"

    try:
        result = await in_store(request, work, write=True)
    except ModerationError as error:
        # Decided by someone else (or by this same form a moment ago) is a conflict; a bad note is the form's.
        status = 409 if await in_store(request, decided_already) else 400
        log.info("console.moderation_refused", queue=queue, item_id=item_id, status=status)
        return await moderation_view(request, problem=f"{QUEUE_TITLES[queue]} #{item_id}: {error}.", status=status)
    if result is None:
        return error_page(request, 404, "Not found", f"There is no item #{item_id} in {QUEUE_TITLES[queue].lower()}.")
    log.info("console.moderated", queue=queue, item_id=item_id, status=result.status,
             points=result.points_awarded, merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(f"{PREFIX}/moderation?decided={queue}-{item_id}")
