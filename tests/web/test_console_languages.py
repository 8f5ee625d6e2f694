"""The merchant sees which language a shopper wrote in when it was not English: on the handoff queue,
the request's page, the customer's page and a feedback's transcript (recorded by the actions from the slot
shopper_language)."""
from __future__ import annotations

from bot.feedback.service import submit_feedback
from bot.handoff import request_handoff
from bot.identity import create_customer, link_identity
from bot.loyalty.program import Program
from tests.web.console import Console
from tests.web.test_console_overview import flat, page, signed_in


async def test_the_queue_and_the_request_say_the_shoppers_language(console: Console, clock) -> None:
    with console.db.session(write=True) as session:
        spanish = request_handoff(session, "widget", "w-es", None,
                                  [{"role": "shopper", "text": "quiero devolver una silla"}], language="es").id
        english = request_handoff(session, "widget", "w-en", None,
                                  [{"role": "shopper", "text": "i want a human"}]).id
        # Asking again from the same chat keeps the language already recorded.
        request_handoff(session, "widget", "w-es", None, [{"role": "shopper", "text": "hola??"}])
    await signed_in(console, "agent")
    html = await page(console, "/console/handoffs")
    rows = {request_id: flat(html.split(f'id="handoff-{request_id}"')[1].split("</tr>")[0])
            for request_id in (spanish, english)}
    assert "widget writes Spanish" in rows[spanish] and "writes" not in rows[english]
    detail = flat(await page(console, f"/console/handoffs/{spanish}"))
    assert "Language Spanish (the shopper wrote in it; the assistant speaks English only)" in detail
    assert "the assistant speaks English only" not in flat(await page(console, f"/console/handoffs/{english}"))


async def test_the_customer_page_says_the_language_of_their_handoffs(console: Console, clock) -> None:
    with console.db.session(write=True) as session:
        ana = create_customer(session, "ana@example.com", "Ana").id
        link_identity(session, ana, "telegram", "31")
        request_handoff(session, "telegram", "31", ana, [{"role": "shopper", "text": "quero falar com alguém"}],
                        language="pt")
    await signed_in(console, "agent")
    assert "telegram writes Portuguese" in flat(await page(console, f"/console/customers/{ana}"))


async def test_a_feedbacks_transcript_says_the_shoppers_language(console: Console, program: Program, clock) -> None:
    with console.db.session(write=True) as session:
        submission = submit_feedback(
            session, program, channel="telegram", sender_id="77", customer_id=None, order_id=None,
            answers=[("csat", 2)], comment="trop lent", now=clock.current, language="fr",
            turns=[{"role": "shopper", "text": "la livraison était trop lente", "at": "2026-06-15T11:50:00+00:00"}],
        )
        feedback_id = submission.feedback[0].id
    await signed_in(console, "agent")
    assert "The shopper wrote in French." in flat(await page(console, f"/console/feedback/{feedback_id}"))
