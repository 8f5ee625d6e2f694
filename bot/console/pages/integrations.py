"""The Integrations page (owners): each connected store — its webhook address, its latest delivery, deliveries
refused for their signature — the event inbox with each event's state, tries and error and a retry for the
failed ones (bot/integrations/inbox.py), and the customer data requests waiting to be handed over."""
from __future__ import annotations

from typing import Any, Dict, List

from aiohttp import web
from sqlalchemy.orm import Session

from bot import clock
from bot.app_context import SETTINGS, WEBHOOK_REFUSALS
from bot.audit import record
from bot.console.page import ID, MERCHANT, PREFIX, error_page, in_store, owner_only, render
from bot.integrations.inbox import STATES_SHOWN, recent_events, retry_event, shop_activity
from bot.integrations.shopify import data_request_files
from bot.log import get_logger

log = get_logger(__name__)

PAGE = f"{PREFIX}/integrations"
EVENTS_SHOWN = 100


def add_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, integrations_page, name="console_integrations")
    app.router.add_post(PAGE + "/events/{id:" + ID + "}/retry", retry)
    app.router.add_get(PAGE + "/data-requests/{name}", data_request_file)


@owner_only
async def integrations_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    wanted = request.query.get("state", "")
    states = (wanted,) if wanted in STATES_SHOWN else ()

    def work(session: Session) -> Dict[str, Any]:
        return {"activity": shop_activity(session),
                "events": recent_events(session, states=states, limit=EVENTS_SHOWN)}

    data = await in_store(request, work)
    seen = {(entry.source, entry.shop): entry for entry in data["activity"]}
    refusals = request.app[WEBHOOK_REFUSALS]
    stores: List[Dict[str, Any]] = []
    for shop, _secret in settings.shopify_webhook_secrets:
        stores.append(_store("shopify", shop, f"{settings.public_base_url}/webhooks/shopify", seen, refusals))
    if settings.woocommerce_webhook_secret:
        sites = [shop for source, shop in seen if source == "woocommerce"] or ["(no delivery yet)"]
        stores += [_store("woocommerce", site, f"{settings.public_base_url}/webhooks/woocommerce", seen, refusals)
                   for site in sites]
    return render(request, "integrations.html", {
        "stores": stores, "events": data["events"], "state": wanted if states else "", "states": STATES_SHOWN,
        "data_requests": [{"name": path.name, "size": path.stat().st_size} for path in data_request_files(settings)],
        "retried": request.query.get("retried", ""),
    })


def _store(source: str, shop: str, address: str, seen: Dict[Any, Any], refusals: Dict[Any, Any]) -> Dict[str, Any]:
    activity = seen.get((source, shop))
    refused, refused_at = refusals.get((source, shop), (0, None))
    return {"source": source, "shop": shop, "address": address,
            "last_received_at": activity.last_received_at if activity else None,
            "counts": activity.counts if activity else {}, "refused": refused, "refused_at": refused_at}


@owner_only
async def retry(request: web.Request) -> web.StreamResponse:
    event_id = int(request.match_info["id"])
    merchant = request[MERCHANT]

    def work(session: Session) -> bool:
        if not retry_event(session, event_id, clock.now()):
            return False
        record(session, merchant, "store_event_retried", f"store event {event_id}", "tried again from the first try",
               clock.now())
        return True

    retried = await in_store(request, work, write=True)
    if not retried:
        return error_page(request, 409, "Not failed", f"Event #{event_id} is not a failed event (any more).")
    log.info("console.store_event_retried", event_id=event_id, merchant_id=request[MERCHANT].id)
    raise web.HTTPSeeOther(f"{PAGE}?retried={event_id}")


@owner_only
async def data_request_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # Only a file the listing shows: never a path the request makes up.
    found = next((path for path in data_request_files(request.app[SETTINGS]) if path.name == name), None)
    if found is None:
        return error_page(request, 404, "Not found", "There is no such data request file.")
    merchant = request[MERCHANT]
    await in_store(request, lambda session: record(session, merchant, "data_request_downloaded", name[:64],
                                                   "the customer data export was downloaded", clock.now()),
                   write=True)
    log.info("console.data_request_downloaded", file=name, merchant_id=merchant.id)
    return web.Response(body=found.read_bytes(), content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
