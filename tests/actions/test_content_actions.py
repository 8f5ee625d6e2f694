"""action_receive_content with real trackers against the seeded store: photos and videos kept for review, once."""
from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.content import HOW_TO_SEND, ActionReceiveContent
from bot.advocacy.content import media_from_metadata
from bot.identity import link_identity
from bot.models import ContentSubmission, Customer
from tests.actions.conftest import make_tracker


async def _run(tracker) -> list:
    dispatcher = CollectingDispatcher()
    assert await ActionReceiveContent().run(dispatcher, tracker, {}) == []
    return dispatcher.messages


def _photo_tracker(sender: str, channel: str, content: dict):
    tracker = make_tracker(sender, "/submit_content", "submit_content", channel=channel)
    tracker.latest_message["metadata"] = {"content": content}
    return tracker


def _submissions(database) -> list:
    with database.session() as session:
        return [(s.channel, s.sender_id, s.customer_id, s.reference, s.urls, s.caption, s.status)
                for s in session.execute(select(ContentSubmission).order_by(ContentSubmission.id)).scalars()]


async def test_a_telegram_photo_from_a_linked_shopper_is_kept_once(demo_store) -> None:
    with demo_store.session(write=True) as session:
        alice = session.execute(select(Customer).where(Customer.first_name == "Alice")).scalar_one()
        link_identity(session, alice.id, "telegram", "5001")
        alice_id = alice.id
    content = {"kind": "photo", "channel": "telegram", "telegram_file_id": "AgACAgIAAxkBAAIB", "caption": "my reading corner"}
    [reply] = await _run(_photo_tracker("5001", "telegram", content))
    assert reply["text"] == ("Thanks, Alice! I've saved your photo for our team to review. If they approve it, "
                             "100 points will be added to your account.")
    [again] = await _run(_photo_tracker("5001", "telegram", content))
    assert again["text"] == reply["text"]
    assert _submissions(demo_store) == [
        ("telegram", "5001", alice_id, "telegram:AgACAgIAAxkBAAIB", [], "my reading corner", "pending")
    ]


async def test_an_instagram_photo_from_a_guest_is_kept_with_its_urls(demo_store) -> None:
    urls = ["https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1&signature=abc"]
    [reply] = await _run(_photo_tracker("1784", "instagram", {"kind": "photo", "channel": "instagram", "urls": urls}))
    assert reply["text"].startswith("Thanks for the photo! I've saved it for our team to review.")
    assert "link my account" in reply["text"]
    [(channel, sender, customer_id, reference, kept_urls, caption, status)] = _submissions(demo_store)
    assert (channel, sender, customer_id, kept_urls, caption, status) == ("instagram", "1784", None, urls, "", "pending")
    assert reference.startswith("sha256:")


async def test_without_a_photo_the_shopper_is_told_how_to_send_one(demo_store) -> None:
    [reply] = await _run(make_tracker("5002", "can I send you a photo", "submit_content", channel="telegram"))
    assert reply["text"] == HOW_TO_SEND
    assert _submissions(demo_store) == []


def test_only_well_formed_media_metadata_counts() -> None:
    assert media_from_metadata(None, "telegram", "1") is None
    assert media_from_metadata({"content": "photo"}, "telegram", "1") is None
    assert media_from_metadata({"content": {"kind": "gif", "telegram_file_id": "x"}}, "telegram", "1") is None
    assert media_from_metadata({"content": {"kind": "photo", "telegram_file_id": "x" * 300}}, "telegram", "1") is None
    assert media_from_metadata({"content": {"kind": "photo", "urls": ["http://insecure", 5]}}, "instagram", "1") is None
    assert media_from_metadata({"content": {"kind": "photo", "urls": "https://x"}}, "instagram", "1") is None
    photo = media_from_metadata({"content": {"kind": "photo", "telegram_file_id": "abc", "caption": " hi "}}, "telegram", "9")
    assert photo is not None and (photo.kind, photo.reference, photo.caption) == ("photo", "telegram:abc", "hi")


async def test_a_video_from_a_linked_shopper_is_kept_and_approval_points_are_named(demo_store) -> None:
    content = {"kind": "video", "channel": "telegram", "telegram_file_id": "BAACAgIAAxkBAAIV", "file_size": 5_000_000,
               "mime_type": "video/mp4", "caption": "unboxing"}
    [reply] = await _run(_photo_tracker("alice", "rest", content))
    assert reply["text"] == ("Thanks, Alice! I've saved your video for our team to review. If they approve it, "
                             "100 points will be added to your account.")
    [(_channel, _sender, _customer, reference, _urls, caption, status)] = _submissions(demo_store)
    assert (reference, caption, status) == ("telegram:BAACAgIAAxkBAAIV", "unboxing", "pending")
