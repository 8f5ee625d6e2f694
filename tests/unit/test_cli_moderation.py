"""The approval queues and the review-request dry run through the real CLI entry, against a temporary SQLite store."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.advocacy.content import SubmittedMedia, keep_submission
from bot.advocacy.reviews import ReviewableProduct, ReviewDraft, submit_review
from bot.advocacy.social import claim_social_follow
from bot.catalog import load_catalog, upsert_product
from bot.cli import main
from bot.db import get_database
from bot.demo import CATALOG_FILE
from bot.identity import create_customer
from bot.loyalty.orders import LineInput, record_paid_order
from bot.loyalty.program import get_program
from bot.models import Customer, OutboundMessage, ReviewRequest

LAMP = ReviewableProduct("OE-LT-002", "Pebble table lamp", "1001")
CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture()
def store(environment, clock, capsys) -> dict:
    """Catalog, two customers and one pending item of each kind (plus a guest review); their ids."""
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    program, now = get_program(), clock.current
    with get_database().session(write=True) as session:
        for product in load_catalog(CATALOG_FILE, program.currency):
            upsert_product(session, product, "https://shop.example", now)
        ann = create_customer(session, "ann@example.com", "Ann").id
        bo = create_customer(session, "bo@example.com", "Bo").id
        photo = SubmittedMedia("telegram", "5001", "photo", "telegram:AgACAgIAAxk", [], "")
        review = submit_review(session, ReviewDraft("telegram", "5001", ann, LAMP, 4, "Warm light,\nlovely glaze. " * 5,
                                                    photo), now)[0].id
        guest = submit_review(session, ReviewDraft("instagram", "1784", None, LAMP, 2, "Too small."), now)[0].id
        video = keep_submission(session, SubmittedMedia("instagram", "1785", "video", "sha256:ab", [CDN], "unboxing"),
                                bo, now)[0].id
        tg_photo = keep_submission(session, SubmittedMedia("telegram", "5001", "photo", "telegram:BQACAgIAAxk", [], ""),
                                   ann, now)[0].id
        claim_social_follow(session, program, ann, "insta", "@ann.smith", "telegram", now)
        record_paid_order(session, program, bo, "2001", Decimal("79"), now - timedelta(days=20),
                          lines=[LineInput("Pebble lamp", 1, Decimal("79"), "OE-LT-002-SND")]).order.fulfilled_at = (
            now - timedelta(days=10))
    return {"ann": ann, "bo": bo, "review": review, "guest": guest, "video": video, "photo": tg_photo, "claim": 1}


def test_reviews_are_listed_shown_approved_and_rejected(store: dict, capsys) -> None:
    review, guest = store["review"], store["guest"]
    code, out = _run(capsys, "reviews", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"#{review} ") and "OE-LT-002 Pebble table lamp  4/5  ann@example.com  photo" in lines[0]
    assert "'Warm light, lovely glaze. Warm light, lovely glaze. Warm li…'" in lines[0]
    assert "2/5  guest (instagram)  none  'Too small.'" in lines[1]
    assert lines[-1] == "[reviews] 2 pending"

    code, out = _run(capsys, "reviews", "show", str(review))
    assert code == 0 and f"review #{review} (pending)" in out and "telegram file id: AgACAgIAAxk" in out
    assert "by: ann@example.com via telegram:5001" in out and "  lovely glaze. Warm light," in out

    code, out = _run(capsys, "reviews", "approve", str(review), "--by", "mia")
    assert (code, out) == (0, f"[reviews] review #{review} approved (+200 points for ann@example.com, notified)\n")
    code, out = _run(capsys, "reviews", "approve", str(review), "--by", "mia")
    assert (code, out) == (1, f"error: review #{review} is already approved\n")
    code, out = _run(capsys, "reviews", "reject", str(guest), "--reason", "x" * 300)
    assert code == 1 and "at most 255 are allowed" in out
    code, out = _run(capsys, "reviews", "reject", str(guest), "--reason", "It is about another product")
    assert (code, out) == (0, f"[reviews] review #{guest} rejected (guest: no points, not notified)\n")

    assert _run(capsys, "reviews", "list")[1] == "[reviews] 0 pending\n"
    code, out = _run(capsys, "reviews", "list", "--status", "approved")
    assert code == 0 and out.splitlines()[-1] == "[reviews] 1 approved"
    code, out = _run(capsys, "reviews", "show", str(review))
    assert "decision: approved by mia at 2026-06-15 12:00; 200 points paid" in out
    code, out = _run(capsys, "ledger", "show", "--customer", "ann@example.com")
    assert code == 0 and "+200" in out and "balance 200 points" in out


def test_content_and_social_queues(store: dict, capsys) -> None:
    code, out = _run(capsys, "content", "list")
    assert code == 0 and "video  bo@example.com  instagram  'unboxing'" in out and out.endswith("[content] 2 pending\n")
    code, out = _run(capsys, "content", "show", str(store["video"]))
    assert code == 0 and f"url: {CDN}" in out and "caption: unboxing" in out
    code, out = _run(capsys, "content", "show", str(store["photo"]))
    assert code == 0 and "telegram file id: BQACAgIAAxk" in out
    code, out = _run(capsys, "content", "approve", str(store["video"]), "--by", "mia")
    assert (code, out) == (0, f"[content] submission #{store['video']} approved (+100 points for bo@example.com, notified)\n")
    code, out = _run(capsys, "content", "reject", str(store["photo"]), "--reason", "Blurry", "--by", "mia")
    assert (code, out) == (0, f"[content] submission #{store['photo']} rejected (ann@example.com notified)\n")

    code, out = _run(capsys, "social", "list")
    assert code == 0 and "instagram  @ann.smith  ann@example.com  telegram" in out
    code, out = _run(capsys, "social", "approve", str(store["claim"]))
    assert (code, out) == (0, f"[social] social follow claim #{store['claim']} approved (+50 points for ann@example.com, notified)\n")
    code, out = _run(capsys, "social", "reject", str(store["claim"]), "--reason", "changed my mind")
    assert (code, out) == (1, f"error: social follow claim #{store['claim']} is already approved\n")

    with get_database().session() as session:
        kinds = session.execute(select(OutboundMessage.kind).order_by(OutboundMessage.id)).scalars().all()
        assert kinds == ["content_approved", "content_rejected", "social_approved"]
        assert session.get(Customer, store["ann"]).points_balance == 50


def test_due_review_requests_is_a_dry_run(store: dict, capsys, clock) -> None:
    code, out = _run(capsys, "reviews", "due-requests")
    assert (code, out) == (0, "[reviews] 0 review messages due at 2026-06-15 12:00 UTC (dry run: nothing recorded)\n")
    code, out = _run(capsys, "reviews", "due-requests", "--at", "2026-06-30T12:00:00+00:00")
    assert code == 0 and out.splitlines() == [
        "bo@example.com  order 2001  request: OE-LT-002 Pebble table lamp",
        "[reviews] 1 review messages due at 2026-06-30 12:00 UTC (dry run: nothing recorded)",
    ]
    with get_database().session() as session:
        assert session.execute(select(func.count(ReviewRequest.id))).scalar_one() == 0


def test_bad_ids_and_arguments_are_explained(store: dict, capsys) -> None:
    for group, noun in (("reviews", "review"), ("content", "submission"), ("social", "social follow claim")):
        assert _run(capsys, group, "approve", "999") == (1, f"error: no {noun} #999\n")
        assert _run(capsys, group, "show", "999") == (1, f"error: no {noun} #999\n")
        code, out = _run(capsys, group, "reject", str(store["review"]), "--reason", "  ")
        assert (code, out) == (1, "error: a rejection needs a reason (the shopper is told it)\n")
    with pytest.raises(SystemExit) as exit_info:  # argparse: --reason is required
        main(["reviews", "reject", "1"])
    assert exit_info.value.code == 2
    assert "--reason" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reviews", "due-requests", "--at", "2026-06-30"])  # no time zone
    assert "needs a time zone" in capsys.readouterr().err
    for group in ("reviews", "content", "social"):  # an id no database column can hold: a clear refusal
        with pytest.raises(SystemExit) as exit_info:
            main([group, "show" if group != "social" else "approve", "99999999999999999999"])
        assert exit_info.value.code == 2
        assert "is not a whole number from 1 to 2147483647" in capsys.readouterr().err
