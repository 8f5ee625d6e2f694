"""Fixed replies (the domain's responses) to messages outside any task: not understood, out of scope, help,
goodbye, thanks, a stray yes or no, "skip" or "stop" with no quiz running.

These are where follow-ups the NLU misread tend to land ("cheaper?" has no intent of its own), so they hand
a follow-up of the last answer over to action_follow_up first (actions/thread.py), as StoreAction does.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import hand_over_follow_up
from actions.offers import take_offer


class ReplyUnlessFollowUp(Action, metaclass=ABCMeta):
    """The response `response`, unless the message follows up on the last answer.

    Abstract (ABCMeta) so that rasa-sdk, which registers every Action subclass, skips it.
    """

    response: str

    @abstractmethod
    def name(self) -> Text:
        """The action's name in the domain."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        handed_over = hand_over_follow_up(self, tracker)
        if handed_over:
            return handed_over
        dispatcher.utter_message(response=self.response)
        return []


class ActionNotUnderstood(ReplyUnlessFollowUp):
    """nlu_fallback: the "here is what I can do" menu."""

    response = "utter_not_understood"

    def name(self) -> Text:
        return "action_not_understood"


class ActionOutOfScope(ReplyUnlessFollowUp):
    """out_of_scope: what the assistant is for."""

    response = "utter_out_of_scope"

    def name(self) -> Text:
        return "action_out_of_scope"


class ActionHelp(ReplyUnlessFollowUp):
    """help: what the assistant can do ("what do I get?" after a tier answer reads as help to the NLU)."""

    response = "utter_help"

    def name(self) -> Text:
        return "action_help"


class ActionGoodbye(ReplyUnlessFollowUp):
    """goodbye (the model reads "got a biger one" as one)."""

    response = "utter_goodbye"

    def name(self) -> Text:
        return "action_goodbye"


class ActionYouAreWelcome(ReplyUnlessFollowUp):
    """thank_you."""

    response = "utter_you_are_welcome"

    def name(self) -> Text:
        return "action_you_are_welcome"


class ActionNoQuizRunning(ReplyUnlessFollowUp):
    """skip or stop with no quiz running (the model reads "the 2nd one" after a search as a skip)."""

    response = "utter_no_quiz_running"

    def name(self) -> Text:
        return "action_no_quiz_running"


class ActionWhatNext(ReplyUnlessFollowUp):
    """A yes or no when no form or confirmation was asking ("no, I meant the lamp" reads as a no to the NLU);
    a yes to the offer the last answer made takes it (actions/offers.py)."""

    response = "utter_what_next"

    def name(self) -> Text:
        return "action_what_next"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        return take_offer(tracker) or await super().run(dispatcher, tracker, domain)
