"""What the widget shows: Rasa's responses as rasa-webchat messages (text, quick replies, images, product
cards), the transcript a reconnecting browser gets, and the output channel that emits them to the chat's room."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Text

from rasa.core.channels.channel import OutputChannel
from rasa.shared.core.events import BotUttered, UserUttered
from socketio import AsyncServer

from bot.handoff import HistoryLine
from bot.log import get_logger
from bot.shared.session_opening import SESSION_OPENED
from channels.render import ProductCard, card_button, product_cards
from channels.widget.config import CHANNEL_NAME

log = get_logger(__name__)
BOT_EVENT = "bot_uttered"
HISTORY_LIMIT = 200
_HTTP = ("https://", "http://")


def quick_replies(buttons: Any) -> List[Dict[str, str]]:
    """Rasa buttons as rasa-webchat quick replies: payload buttons and web_url links; others dropped."""
    replies: List[Dict[str, str]] = []
    for button in filter(None, map(card_button, buttons if isinstance(buttons, (list, tuple)) else [])):
        if button.url:
            replies.append({"content_type": "text", "type": "web_url", "title": button.title, "url": button.url})
        else:
            replies.append({"content_type": "text", "title": button.title, "payload": button.payload or ""})
    return replies


def text_message(text: Any, buttons: Any = None) -> Optional[Dict[str, Any]]:
    replies = quick_replies(buttons)
    body = text.strip() if isinstance(text, str) else ""
    if not body and not replies:
        return None
    message: Dict[str, Any] = {"text": body}
    if replies:
        message["quick_replies"] = replies
    return message


def image_message(url: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(url, str) or not url.startswith(_HTTP):
        return None
    return {"attachment": {"type": "image", "payload": {"src": url}}}


def _card(card: ProductCard) -> Dict[str, Any]:
    element: Dict[str, Any] = {"title": card.title}
    if card.subtitle:
        element["subtitle"] = card.subtitle
    if card.image_url:
        element["image_url"] = card.image_url
    element["buttons"] = [
        {"type": "web_url", "title": button.title, "url": button.url} if button.url
        else {"type": "postback", "title": button.title, "payload": button.payload}
        for button in card.buttons
    ]
    return element


def cards_message(elements: Any) -> Optional[Dict[str, Any]]:
    """Every product card in ONE generic-template message (Rasa's socket.io channel sends one per card)."""
    cards = product_cards(elements)
    if not cards:
        return None
    return {"attachment": {"type": "template", "payload": {"template_type": "generic",
                                                            "elements": [_card(card) for card in cards]}}}


def attachment_message(attachment: Any) -> Optional[Dict[str, Any]]:
    if isinstance(attachment, str):  # Rasa responses may give a bare URL
        return text_message(attachment) if attachment.startswith(_HTTP) else None
    if not isinstance(attachment, Mapping):
        return None
    payload = attachment.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    if attachment.get("type") == "image":
        return image_message(payload.get("src") or payload.get("url"))
    if attachment.get("type") == "template" and payload.get("template_type") == "generic":
        return cards_message(payload.get("elements"))
    return None


# What a `custom` response may carry to be shown as it is (after the same checks as any response).
CUSTOM_KEYS = frozenset({"text", "quick_replies", "buttons", "image", "attachment", "elements"})


def custom_messages(custom: Any) -> List[Dict[str, Any]]:
    if not isinstance(custom, Mapping) or not custom:
        return []
    if set(custom) <= CUSTOM_KEYS:
        return widget_messages(custom)
    fallback = text_message(custom.get("text"))
    log.info("widget.send.custom_unsupported", keys=sorted(str(key) for key in custom)[:10], fallback=bool(fallback))
    return [fallback] if fallback else []


def widget_messages(response: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A Rasa bot response {text, buttons | quick_replies, custom, image, attachment, elements} as the
    messages the widget shows, in the order Rasa's OutputChannel.send_response sends them."""
    candidates: List[Optional[Dict[str, Any]]] = [
        text_message(response.get("text"), response.get("quick_replies") or response.get("buttons"))
    ]
    if "custom" in response:
        candidates.extend(custom_messages(response.get("custom")))
    candidates.append(image_message(response.get("image")))
    candidates.append(attachment_message(response.get("attachment")))
    candidates.append(cards_message(response.get("elements")))
    return [message for message in candidates if message]


def transcript(events: Iterable[Any], limit: int = HISTORY_LIMIT,
               extra: Sequence[HistoryLine] = ()) -> List[Dict[str, Any]]:
    """A conversation's tracker events as the widget's transcript (the last `limit` entries), with `extra`
    lines (a live handoff's, which the bot never saw) in their place by time. A button press is shown as the
    button's title, as the widget showed it when it was pressed."""
    titles: Dict[str, str] = {}
    entries: List[Dict[str, Any]] = []
    waiting = sorted(extra, key=lambda line: line.at)

    def lines_until(moment: Optional[float]) -> None:
        while waiting and (moment is None or waiting[0].at.timestamp() <= moment):
            line = waiting.pop(0)
            entries.append({"sender": line.sender, "text": line.text})

    for event in events:
        lines_until(getattr(event, "timestamp", None) or 0.0)
        if isinstance(event, UserUttered):
            if (event.metadata or {}).get(SESSION_OPENED):
                continue  # the greeting's trigger, not something the shopper typed
            text = (event.text or "").strip()
            if text:
                entries.append({"sender": "user", "text": titles.get(text, text)})
        elif isinstance(event, BotUttered):
            for message in widget_messages({**(event.data or {}), "text": event.text}):
                for reply in message.get("quick_replies", []):
                    if "payload" in reply:
                        titles[reply["payload"]] = reply["title"]
                entries.append({"sender": "bot", **message})
    lines_until(None)
    return entries[-limit:]


class WidgetOutput(OutputChannel):
    """Sends bot messages to every socket of a conversation (its room): all tabs see the replies."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    def __init__(self, sio: AsyncServer) -> None:
        self.sio = sio

    async def _emit(self, recipient_id: Text, message: Optional[Dict[str, Any]]) -> None:
        if message:
            await self.sio.emit(BOT_EVENT, message, room=recipient_id)

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        for part in widget_messages(message):
            await self._emit(recipient_id, part)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, text_message(text))

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self._emit(recipient_id, text_message(text, buttons))

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self._emit(recipient_id, text_message(text, quick_replies))

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._emit(recipient_id, image_message(image))

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:  # type: ignore[override]
        await self._emit(recipient_id, attachment_message(attachment))

    async def send_elements(self, recipient_id: Text, elements: Iterable[Dict[Text, Any]], **kwargs: Any) -> None:
        await self._emit(recipient_id, cards_message(list(elements)))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        for part in custom_messages(json_message):
            await self._emit(recipient_id, part)
