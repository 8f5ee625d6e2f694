"""leave_review: a product review in chat, as the Rasa form review_form around bot.advocacy.reviews.

    leave_review → action_start_review (clears the last draft; a product named in the request is taken);
                   a question about reviews ("can i leave a review?") gets how it works and a "Write a
                   review" button instead, and review_started false keeps the form closed
                 → review_form asks for the product (action_ask_review_product: the shopper's ordered
                   products as buttons), the stars, the words and an optional photo or video; every reply
                   goes to validate_review_form
    form done    → action_submit_review stores it for moderation; points follow the merchant's approval
    "stop"       → action_cancel_review (rules in data/rules/reviews.yml)

A reply the form cannot use but the NLU is sure is another request ("how many points do I have?") makes
the validation return nothing: Rasa rejects the form for that turn, the request's rule answers, and the
form asks again.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.asking import is_question
from actions.common import StoreAction, read_config, sender_of, with_store
from actions.forms import latest_reply, other_intents, started_by
from bot import clock
from bot.advocacy.content import media_from_metadata
from bot.advocacy.reviews import (
    ReviewableProduct, ReviewDraft, ReviewError, already_reviewed, check_review_text, find_product, match_product,
    parse_rating, points_for, reviewable_products, submit_review,
)
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.quiz.runs import Reply, is_interruption

log = get_logger(__name__)

PRODUCT, TITLE, ORDER = "review_product", "review_product_title", "review_order"
RATING, TEXT, MEDIA, MEDIA_CONTENT = "review_rating", "review_text", "review_media", "review_media_content"
SLOTS = (PRODUCT, TITLE, ORDER, RATING, TEXT, MEDIA, MEDIA_CONTENT)
STARTED = "review_started"  # the rules open review_form only when action_start_review set it true
WRITE_BUTTON = {"title": "Write a review", "payload": "/leave_review"}
# Replies the form reads itself (as answers or as "skip"), never as a request of their own.
REVIEW_INTENTS = frozenset({
    "leave_review", "skip_question", "affirm", "deny", "out_of_scope", "nlu_fallback", "submit_content",
    "product_search",
})
SKIP_WORDS = frozenset({"skip", "no", "nope", "no thanks", "no thank you", "none", "not now", "no photo", "no video"})
MAX_PRODUCT_BUTTONS = 5
REVIEW_APOLOGY = ("Sorry — I can't take reviews right now. Please try again in a few minutes; "
                  "nothing you wrote has been lost from this chat.")


def _stop_request(reply: Reply, requested: Optional[str]) -> bool:
    """"stop", "cancel", "never mind": short messages the NLU reads as stopping, or as no to the product or
    the stars (a review itself may be "not really worth it", and to the photo question "no" is an answer)."""
    stopping = reply.intent == "stop_quiz" or (reply.intent == "deny" and requested in (PRODUCT, RATING))
    return stopping and len(reply.text.split()) <= 4


def _button_press(reply: Reply) -> bool:
    return reply.text.startswith("/")


def reviews_explained(program: Program) -> str:
    """How reviews earn points, for a shopper who asks (no form is opened until they start one)."""
    text, photo, video = (points_for(program, kind) for kind in ("none", "photo", "video"))
    return (f"Yes — you can review any product from our shop, right here in the chat. Once our team approves it "
            f"you get {text:,} points ({photo:,} with a photo, {video:,} with a video), whatever the stars. "
            "It takes a minute: the product, 1–5 stars and a few words. Want to write one now?")


class ActionStartReview(StoreAction):
    """A fresh draft; "I want to review the Pebble lamp" starts with the product already chosen. A question
    about reviews gets the explanation and the offer, and the form stays closed (review_started false)."""

    def name(self) -> Text:
        return "action_start_review"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[EventType]:
        channel, sender_id = sender_of(tracker)
        text = tracker.latest_message.get("text") or ""
        if is_question(text):
            log.info("review.explained")
            dispatcher.utter_message(text=reviews_explained(read_config(get_program)), buttons=[WRITE_BUTTON])
            return [SlotSet(STARTED, False)]
        events: List[EventType] = [SlotSet(STARTED, True)] + [SlotSet(slot, None) for slot in SLOTS]
        if _button_press(Reply(text, None, 0.0)):
            return events

        def work(session: Session) -> Tuple[Optional[ReviewableProduct], bool]:
            customer = customer_for_sender(session, channel, sender_id)
            named = match_product(session, text)
            if named is None:
                return None, False
            done = already_reviewed(session, customer.id if customer else None, channel, sender_id, named.sku)
            return _with_order(session, customer.id if customer else None, named), done

        named, done = await with_store(work)
        if named is not None and done:
            dispatcher.utter_message(text=f"You've already reviewed the {named.title} — thank you! "
                                          "Is there another product you'd like to review?")
        elif named is not None:
            events += [SlotSet(PRODUCT, named.sku), SlotSet(TITLE, named.title), SlotSet(ORDER, named.order_external_id)]
        return events


def _with_order(session: Session, customer_id: Optional[int], product: ReviewableProduct) -> ReviewableProduct:
    """The product as the customer ordered it (with its order), when they did."""
    if customer_id is None:
        return product
    for ordered in reviewable_products(session, customer_id, limit=50):
        if ordered.sku == product.sku:
            return ordered
    return product


class ActionAskReviewProduct(StoreAction):
    hands_over_follow_ups = False  # a form's question, never the answer to a free message
    apology = REVIEW_APOLOGY

    def name(self) -> Text:
        return "action_ask_review_product"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[EventType]:
        channel, sender_id = sender_of(tracker)

        def work(session: Session) -> List[ReviewableProduct]:
            customer = customer_for_sender(session, channel, sender_id)
            return reviewable_products(session, customer.id, MAX_PRODUCT_BUTTONS) if customer else []

        ordered = await with_store(work)
        if ordered:
            dispatcher.utter_message(
                text="Which product would you like to review? Here's what you've ordered recently — or type the "
                     "name of another product.",
                buttons=[{"title": product.title[:40], "payload": product.title} for product in ordered])
        else:
            dispatcher.utter_message(text="Which product would you like to review? Type its name as it appears on "
                                          "our shop (e.g. \"Pebble table lamp\"). Say \"cancel\" to stop.")
        return []


class ValidateReviewForm(Action):
    """Every reply while review_form is active comes here (the form's validation action)."""

    def name(self) -> Text:
        return "validate_review_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        if started_by(tracker, "action_start_review"):
            return []  # the request that started the review is not an answer
        reply = latest_reply(tracker)
        requested = tracker.get_slot("requested_slot")
        others = other_intents(domain, REVIEW_INTENTS)
        if _stop_request(reply, requested):
            return []  # the stop rule cancels the review
        if requested != MEDIA:
            early = self._early_media(dispatcher, tracker)
            if early:
                return early
        try:
            if requested == PRODUCT:
                return await self._product(dispatcher, tracker, reply, others)
            if requested == RATING:
                return self._rating(dispatcher, reply, others)
            if requested == TEXT:
                return self._text(dispatcher, reply, others)
            if requested == MEDIA:
                return self._media(dispatcher, tracker, reply, others)
        except Exception:  # a failing store or bug: say so and keep asking, never go silent
            log.exception("review.validate_failed", requested=requested)
            dispatcher.utter_message(text=REVIEW_APOLOGY)
            return [ActiveLoop(None), SlotSet("requested_slot", None)] + [SlotSet(slot, None) for slot in SLOTS]
        return []

    @staticmethod
    async def _product(dispatcher: CollectingDispatcher, tracker: Tracker, reply: Reply,
                       others: "frozenset[str]") -> List[EventType]:
        if _button_press(reply):
            return []  # another button ("My points"): its rule answers
        channel, sender_id = sender_of(tracker)

        def work(session: Session) -> Tuple[Optional[ReviewableProduct], bool]:
            customer = customer_for_sender(session, channel, sender_id)
            customer_id = customer.id if customer else None
            ordered = reviewable_products(session, customer_id, limit=50) if customer_id else []
            wanted = reply.text.strip().lower()
            product = next((item for item in ordered if item.title.lower() == wanted), None)
            if product is None:
                named = match_product(session, reply.text)
                product = _with_order(session, customer_id, named) if named else None
            if product is None:
                return None, False
            return product, already_reviewed(session, customer_id, channel, sender_id, product.sku)

        product, done = await with_store(work)
        if product is None:
            if is_interruption(reply, others):
                return []
            dispatcher.utter_message(text=f"I couldn't find a product called “{reply.text.strip()[:60]}”. Tap one "
                                          "of the buttons or type the name as it appears on our shop.")
            return [SlotSet(PRODUCT, None)]
        if done:
            dispatcher.utter_message(text=f"You've already reviewed the {product.title} — thank you! "
                                          "Which other product would you like to review?")
            return [SlotSet(PRODUCT, None)]
        return [SlotSet(PRODUCT, product.sku), SlotSet(TITLE, product.title), SlotSet(ORDER, product.order_external_id)]

    @staticmethod
    def _early_media(dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        """A photo or video sent before the form asks for one goes with the review (not to the UGC queue,
        which would pay for it a second time); the form then asks its question again."""
        channel, sender_id = sender_of(tracker)
        metadata = tracker.latest_message.get("metadata")
        media = media_from_metadata(metadata, channel, sender_id)
        requested = tracker.get_slot("requested_slot")
        if media is None or requested is None:
            return []
        dispatcher.utter_message(text=f"Got your {media.kind} — it will go with your review.")
        return [SlotSet(MEDIA, media.kind), SlotSet(MEDIA_CONTENT, dict(metadata["content"])), SlotSet(requested, None)]

    @staticmethod
    def _rating(dispatcher: CollectingDispatcher, reply: Reply, others: "frozenset[str]") -> List[EventType]:
        rating = parse_rating(reply.text)
        if rating is not None:
            return [SlotSet(RATING, float(rating))]
        if _button_press(reply) or is_interruption(reply, others):
            return []
        dispatcher.utter_message(text="Please give it 1 to 5 stars — tap a button or type a number.")
        return [SlotSet(RATING, None)]

    @staticmethod
    def _text(dispatcher: CollectingDispatcher, reply: Reply, others: "frozenset[str]") -> List[EventType]:
        # Any words can be a review ("fast delivery, great quality" reads like a shipping question), so
        # only a question the NLU is sure of, or a short request that is not about the shop, interrupts.
        if is_interruption(reply, others) and (
                "?" in reply.text or (len(reply.text.split()) <= 6 and reply.intent != "faq")):
            return []
        if _button_press(reply):
            if reply.text.startswith("/skip_question"):
                dispatcher.utter_message(text="A few words are what makes a review useful to other shoppers — "
                                              "what did you like or dislike about it?")
                return [SlotSet(TEXT, None)]
            return []
        try:
            return [SlotSet(TEXT, check_review_text(reply.text))]
        except ReviewError as error:
            dispatcher.utter_message(text=str(error))
            return [SlotSet(TEXT, None)]

    @staticmethod
    def _media(dispatcher: CollectingDispatcher, tracker: Tracker, reply: Reply,
               others: "frozenset[str]") -> List[EventType]:
        channel, sender_id = sender_of(tracker)
        metadata = tracker.latest_message.get("metadata")
        media = media_from_metadata(metadata, channel, sender_id)
        if media is not None:
            return [SlotSet(MEDIA, media.kind), SlotSet(MEDIA_CONTENT, dict(metadata["content"]))]
        if reply.text.startswith("/submit_content"):
            dispatcher.utter_message(text="I couldn't open that file. Please send a photo or a video — or tap Skip.")
            return [SlotSet(MEDIA, None)]
        words = reply.text.strip().lower().rstrip(".!")
        if reply.intent in ("skip_question", "deny") or words in SKIP_WORDS:
            return [SlotSet(MEDIA, "none")]
        if _button_press(reply) or is_interruption(reply, others):
            return []
        dispatcher.utter_message(text="Send a photo or a short video here, or tap Skip to finish without one.")
        return [SlotSet(MEDIA, None)]


class ActionSubmitReview(StoreAction):
    """After the form: the review is stored for moderation and the shopper told what happens next."""
    hands_over_follow_ups = False  # it acts on the answer to its own question

    apology = REVIEW_APOLOGY

    def name(self) -> Text:
        return "action_submit_review"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[EventType]:
        cleared: List[EventType] = [SlotSet(slot, None) for slot in SLOTS]
        channel, sender_id = sender_of(tracker)
        sku, title, rating, text = (tracker.get_slot(slot) for slot in (PRODUCT, TITLE, RATING, TEXT))
        if not (sku and title and rating and text):
            return cleared  # nothing complete to store (the form was left)
        kind = tracker.get_slot(MEDIA) or "none"
        media = None
        if kind != "none":
            media = media_from_metadata({"content": tracker.get_slot(MEDIA_CONTENT)}, channel, sender_id)
        program = read_config(get_program)

        def work(session: Session) -> Tuple[bool, bool, Optional[str], str]:
            customer = customer_for_sender(session, channel, sender_id)
            product = find_product(session, sku) or ReviewableProduct(sku, title)
            product = ReviewableProduct(product.sku, product.title, tracker.get_slot(ORDER))
            draft = ReviewDraft(channel=channel, sender_id=sender_id, customer_id=customer.id if customer else None,
                                product=product, rating=int(rating), text=text, media=media)
            review, created = submit_review(session, draft, clock.now())
            return created, customer is not None, customer.display_name if customer else None, review.media_kind

        try:
            created, member, name, stored_kind = await with_store(work, write=True)
        except ReviewError as error:
            dispatcher.utter_message(text=str(error))
            return cleared
        log.info("review.submitted", created=created, channel=channel, media=stored_kind, rating=int(rating))
        if not created:
            dispatcher.utter_message(text=f"You've already reviewed the {title} — thank you! I've kept your first review.")
            return cleared
        thanks = f"Thank you{', ' + name if name else ''}! Your review of the {title} is with our team"
        if member:
            points = points_for(program, stored_kind)
            with_media = {"photo": " (with your photo)", "video": " (with your video)"}.get(stored_kind, "")
            text_out = (f"{thanks}{with_media}. Once it's approved — usually within two days — "
                        f"{points:,} points will be added to your account.")
        else:
            text_out = (f"{thanks}. Reviews from members earn points — if you have an account, say "
                        "\"link my account\" so your next review counts.")
        dispatcher.utter_message(text=text_out)
        return cleared


class ActionCancelReview(Action):
    def name(self) -> Text:
        return "action_cancel_review"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        if tracker.get_slot(PRODUCT) or tracker.active_loop.get("name") == "review_form":
            dispatcher.utter_message(text="No problem — I've dropped that review. Say \"leave a review\" any time.")
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + [SlotSet(slot, None) for slot in SLOTS]
