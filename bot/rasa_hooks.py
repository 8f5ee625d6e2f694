"""The project's changes to how the Rasa server calls the action server, on every channel.

- A failed call (action server down, refused, reset, 5xx, an invalid answer, or no answer within
  ACTION_TIMEOUT_SECONDS) gets the shopper a short apology. Rasa's own failure path logs the error and
  drops the action's events: the shopper would get an empty reply. The apology is a BotUttered event from
  the action, so every channel's output sends it and the tracker keeps it. An action the server rejected
  on purpose (ActionExecutionRejection, HTTP 400) still goes Rasa's way: the policies pick another action.
- The request body is lighter: the user events before the latest carry only their text, intent name and
  entities, not the whole NLU output (intent and response rankings, extractor details): the actions read
  the latest message's parse data (tracker.latest_message) and the older messages' text only. A 30-turn
  conversation's tracker goes from 129 to 63 KiB per call (README, Performance).

- Loading the model for prediction builds each TensorFlow model's weights with one training step run
  eagerly instead of through a traced training graph: Rasa fits one example only to give the weights their
  shapes and then overwrites them with the trained ones, and tracing the training step (forward, backward,
  optimizer) was most of the server's start-up. If that step did not create every weight the checkpoint
  holds (a branch the example does not take), the model is loaded Rasa's way. The prediction graph is
  traced as before.

- A message holding several requests ("whats my balance and also do u ship to canada") is answered request
  by request: Agent.handle_message runs each as its own turn, in order, on the same output channel, so the
  replies arrive one after the other (bot/several_requests.py decides what is several; at most two are
  answered, and a note says when there were more). Not while a form (quiz, review, feedback) is asking:
  there a reply with "and" in it is an answer ("oak and walnut").
- A message a channel marks as opening a session (metadata OPENS_SESSION: Instagram has no "open" event
  like the widget's or /start) is greeted first, unless it is itself a greeting: the greeting's turn runs,
  then the message's.
- A typed message that answers a campaign poll the shopper was sent (bot/campaigns/: "free shipping", "2")
  becomes that poll's button payload /answer_poll{...} before NLU, its words kept in the metadata
  ("typed_answer"): the trained model knows nothing of a merchant's poll options.

install_action_hooks() is called when the tracker store is built (bot/conversation_stores.py), which every
Rasa entry point reading endpoints.yml does before it loads the model; it is idempotent.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

from bot.log import get_logger

log = get_logger(__name__)

OPENS_SESSION = "opens_session"
GREET_PAYLOAD = "/greet"
APOLOGY = ("Sorry, I can't do that right now: part of my system is not answering. "
           "Please try again in a minute.")
_INSTALLED = False


def action_timeout_seconds() -> float:
    from bot.settings import get_settings

    return float(get_settings().action_timeout_seconds)


def slim_tracker_state(state: Dict[str, Any]) -> Dict[str, Any]:
    """The tracker state with every user event but the latest reduced to its text and intent name."""
    events = state.get("events")
    if not isinstance(events, list):
        return state
    latest_user = max((index for index, event in enumerate(events) if event.get("event") == "user"), default=-1)
    slimmed: List[Dict[str, Any]] = []
    for index, event in enumerate(events):
        if event.get("event") == "user" and index != latest_user and isinstance(event.get("parse_data"), dict):
            parse_data = event["parse_data"]
            intent = parse_data.get("intent") or {}
            event = dict(event)
            event["parse_data"] = {
                "intent": {"name": intent.get("name"), "confidence": intent.get("confidence")},
                "entities": [
                    {key: entity.get(key) for key in ("entity", "value", "start", "end") if key in entity}
                    for entity in parse_data.get("entities") or [] if isinstance(entity, dict)
                ],
                "text": parse_data.get("text"),
            }
        slimmed.append(event)
    return {**state, "events": slimmed}


def install_action_hooks() -> None:
    """Patch rasa.core.actions.action.RemoteAction (see the module docstring). Idempotent."""
    global _INSTALLED
    if _INSTALLED:
        return
    from rasa.core.actions import action as rasa_action
    from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
    from rasa.shared.core.events import BotUttered

    original_run = RemoteAction.run

    def action_call_format(self: RemoteAction, tracker: Any, domain: Any) -> Dict[str, Any]:
        from rasa.shared.core.trackers import EventVerbosity

        import rasa

        result: Dict[str, Any] = {
            "next_action": self._name,
            "sender_id": tracker.sender_id,
            "tracker": slim_tracker_state(tracker.current_state(EventVerbosity.ALL)),
            "version": rasa.__version__,
        }
        if not self._is_selective_domain_enabled() or domain.does_custom_action_explicitly_need_domain(self.name()):
            result["domain"] = domain.as_dict()
        return result

    async def run(self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any) -> List[Any]:
        try:
            return await asyncio.wait_for(
                original_run(self, output_channel, nlg, tracker, domain), timeout=action_timeout_seconds()
            )
        except ActionExecutionRejection:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every other failure gets the shopper an answer
            reason = "timeout" if isinstance(error, asyncio.TimeoutError) else type(error).__name__
            cause = error.__cause__
            log.error("action.call_failed", action=self.name(), conversation=tracker.sender_id, reason=reason,
                      detail=str(cause or error)[:300])
            return [BotUttered(APOLOGY, metadata={"rapport_apology": True})]

    RemoteAction._action_call_format = action_call_format  # type: ignore[assignment]
    RemoteAction.run = run  # type: ignore[assignment]
    assert rasa_action.RemoteAction is RemoteAction
    _install_eager_weight_building()
    _install_several_requests()
    _INSTALLED = True


def _install_eager_weight_building() -> None:
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.models import RasaModel

    original_load = RasaModel.load.__func__  # type: ignore[attr-defined]

    def load(cls: Any, model_file_name: str, model_data_example: Any, predict_data_example: Any = None,
             finetune_mode: bool = False, *args: Any, **kwargs: Any) -> Any:
        if finetune_mode:  # training goes on from these weights: Rasa's own way
            return original_load(cls, model_file_name, model_data_example, predict_data_example, finetune_mode,
                                 *args, **kwargs)
        import tensorflow as tf

        config = kwargs.get("config", {})
        model = cls(*args, **kwargs)
        model.compile(optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)), run_eagerly=True)
        model.fit(RasaBatchDataGenerator(model_data_example, batch_size=1), verbose=False)
        status = model.load_weights(model_file_name)
        try:
            # An eager step creates only the variables of the branches this one example takes (a traced graph
            # creates every branch's): a model with a weight the step did not create is loaded Rasa's way.
            status.assert_consumed()
        except AssertionError:
            status.expect_partial()  # this model is dropped: no warnings about its unused values
            log.info("model.load.traced", model=cls.__name__, reason="the eager step did not create every weight")
            return original_load(cls, model_file_name, model_data_example, predict_data_example, finetune_mode,
                                 *args, **kwargs)
        model.run_eagerly = bool(config.get(RUN_EAGERLY))  # predictions go through the traced graph again
        if predict_data_example:
            model.run_inference(predict_data_example)
        return model

    RasaModel.load = classmethod(load)  # type: ignore[assignment]


async def poll_answer_in(agent: Any, message: Any) -> Any:
    """The message as its campaign poll's button payload when it is a typed answer to an open poll (see the
    module docstring), else the message itself. Not while a form is asking (a quiz's "2" is the quiz's); a
    failing store leaves the message as it is."""
    from rasa.core.channels.channel import UserMessage

    from bot import clock
    from bot.campaigns.service import CAMPAIGN_ENTITY, MAX_TYPED_ANSWER, OPTION_ENTITY, POLL_INTENT, open_poll_answer
    from bot.db import transaction_in_thread
    from bot.identity import identity_channel

    text = (message.text or "").strip()
    if not text or text.startswith("/") or len(text) > MAX_TYPED_ANSWER or not message.sender_id:
        return message
    channel = identity_channel(message.input_channel)
    try:
        found = await transaction_in_thread(
            lambda session: open_poll_answer(session, channel, message.sender_id, text, clock.now()))
    except Exception as error:  # noqa: BLE001 - mapping is a nicety: the message is still answered as typed
        log.error("campaign.poll_lookup_failed", error_type=type(error).__name__, detail=str(error)[:300])
        return message
    if found is None:
        return message
    tracker = await agent.processor.tracker_store.retrieve(message.sender_id) if agent.processor else None
    if tracker is not None and tracker.active_loop_name:
        return message
    campaign_id, option = found
    log.info("campaign.typed_answer", conversation=message.sender_id, campaign=campaign_id, option=option)
    payload = f'/{POLL_INTENT}{{"{CAMPAIGN_ENTITY}":{campaign_id},"{OPTION_ENTITY}":{option}}}'
    return UserMessage(payload, message.output_channel, message.sender_id,
                       metadata={**(message.metadata or {}), "typed_answer": text},
                       input_channel=message.input_channel, message_id=message.message_id)


def _install_several_requests() -> None:
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.shared.core.events import BotUttered

    from bot.several_requests import (
        MAX_ANSWERED, Reading, more_requests_note, might_hold_several, reading_of, split_requests,
    )

    original_handle = Agent.handle_message

    async def requests_in(agent: Agent, message: UserMessage) -> List[str]:
        text = message.text or ""
        if not might_hold_several(text) or agent.processor is None:
            return [text]
        tracker = await agent.processor.tracker_store.retrieve(message.sender_id)
        if tracker is not None and tracker.active_loop_name:
            return [text]

        async def classify(piece: str) -> Reading:
            parse = await agent.processor.parse_message(UserMessage(piece, sender_id=message.sender_id))
            return reading_of(parse)

        return await split_requests(text, classify)

    async def greet_first(agent: Agent, message: UserMessage) -> None:
        text = (message.text or "").strip()
        if text.startswith(GREET_PAYLOAD):
            return
        if not text.startswith("/"):  # a button's payload is never a greeting
            parse = await agent.processor.parse_message(UserMessage(text, sender_id=message.sender_id))
            if (parse.get("intent") or {}).get("name") == "greet":
                return
        log.info("session.greeted_first", conversation=message.sender_id)
        await original_handle(agent, UserMessage(
            GREET_PAYLOAD, message.output_channel, message.sender_id, metadata={OPENS_SESSION: True},
            input_channel=message.input_channel,
            message_id=f"{message.message_id}-greeting" if message.message_id else None,
        ))

    async def handle_message(self: Agent, message: UserMessage) -> Optional[List[Dict[str, Any]]]:
        if not self.is_ready():
            return await original_handle(self, message)
        message = await poll_answer_in(self, message)
        if (message.metadata or {}).get(OPENS_SESSION):
            try:
                await greet_first(self, message)
            except Exception as error:  # noqa: BLE001 - the greeting is a nicety: the message is still answered
                log.error("session.greeting_failed", error_type=type(error).__name__, detail=str(error)[:300])
        try:
            requests = await requests_in(self, message)
        except Exception as error:  # noqa: BLE001 - splitting is a nicety: the message is still answered whole
            log.error("several_requests.failed", error_type=type(error).__name__, detail=str(error)[:300])
            requests = [message.text or ""]
        if len(requests) < 2:
            return await original_handle(self, message)
        log.info("several_requests", conversation=message.sender_id, found=len(requests),
                 answered=min(len(requests), MAX_ANSWERED))
        result = None
        for part, request in enumerate(requests[:MAX_ANSWERED], start=1):
            metadata = dict(message.metadata or {})
            metadata["several_requests"] = {"message": message.text, "part": part, "of": len(requests)}
            result = await original_handle(self, UserMessage(
                request, message.output_channel, message.sender_id, metadata=metadata,
                input_channel=message.input_channel,
                message_id=f"{message.message_id}-{part}" if message.message_id else None,
            ))
        note = more_requests_note(requests)
        if note:
            async with self.lock_store.lock(message.sender_id):
                tracker = await self.processor.get_tracker(message.sender_id)
                said = BotUttered(note, metadata={"several_requests": {"message": message.text}})
                tracker.update(said)
                await self.processor.execute_side_effects([said], tracker, message.output_channel)
                await self.processor.save_tracker(tracker)
        if isinstance(message.output_channel, CollectingOutputChannel):
            return message.output_channel.messages
        return result

    Agent.handle_message = handle_message  # type: ignore[assignment]
