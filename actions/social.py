"""claim_social_follow: a shopper says they follow the shop; the claim waits for the merchant's check."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.asking import is_question
from actions.offers import accepted_offer_entities
from actions.common import StoreAction, read_config, sender_of, with_store
from actions.loyalty import EARN_BUTTON, guest_text
from bot import clock
from bot.advocacy.social import SocialClaimOutcome, claim_social_follow, network_name, normalize_network
from bot.identity import customer_for_sender
from bot.log import get_logger
from bot.loyalty.program import Program, get_program
from bot.shop import get_shop

log = get_logger(__name__)

# "@maria.home": the shopper's name on the network, so the team can find the follow.
HANDLE = re.compile(r"(?<![\w@])@([A-Za-z0-9._]{1,30})\b")


def network_buttons(program: Program) -> List[Dict[str, str]]:
    return [{"title": network_name(network), "payload": '/claim_social_follow{"social_network": "%s"}' % network}
            for network in program.earning.social_networks]


def outcome_text(program: Program, outcome: SocialClaimOutcome, handle: Optional[str]) -> str:
    network = network_name(outcome.network) if outcome.network else ""
    if outcome.status == "pending":
        find_you = "" if handle else (f" If your {network} name isn't the one on your account, tell me — "
                                      f"e.g. \"I follow you on {network} as @yourname\".")
        return (f"Thanks for following us on {network}! Our team will check and add {outcome.points:,} points "
                f"once it's confirmed.{find_you}")
    if outcome.status == "already_pending":
        return f"We're still checking your {network} follow — the {outcome.points:,} points will follow once it's confirmed."
    if outcome.status == "already_approved":
        return f"You've already earned your {network} follow points — thanks for following us!"
    if outcome.status == "already_rejected":
        return (f"We couldn't confirm your {network} follow earlier, so it can't earn points again. If you think "
                "that's a mistake, ask for a person and our team will look.")
    if outcome.status == "off":
        return "We don't give points for following us at the moment — but thank you for following!"
    names = ", ".join(network_name(n) for n in program.earning.social_networks)
    return f"We give follow points for {names} — which one do you follow us on?"


def follow_offer_buttons(program: Program, network: Optional[str]) -> List[Dict[str, str]]:
    """"I follow on Instagram" (the network asked about, or each one): a tap is the claim itself."""
    return [{"title": f"I follow on {network_name(name)}", "payload": '/claim_social_follow{"social_network": "%s"}' % name}
            for name in program.earning.social_networks if network in (None, name)]


def _either(names: List[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def follow_explanation(program: Program, network: Optional[str]) -> str:
    """How follow points work, for a shopper who asks about them (nothing is claimed)."""
    names = [network_name(n) for n in program.earning.social_networks]
    where = network_name(network) if network else _either(names)
    example = network_name(network) if network else names[0]
    return (f"Yes — following us on {where} earns {program.earning.social_follow:,} points, once per network. "
            f"Follow us, then tell me here (e.g. \"I followed you on {example} as @yourname\") or tap the button; "
            f"our team checks the follow and adds the points.")


class ActionClaimSocialFollow(StoreAction):
    def name(self) -> Text:
        return "action_claim_social_follow"

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        channel, sender_id = sender_of(tracker)
        program = read_config(get_program)
        text = tracker.latest_message.get("text") or ""
        named = next(tracker.get_latest_entity_values("social_network"), None)
        named = named or accepted_offer_entities(tracker).get("social_network")  # a yes to "I follow on …"
        network = normalize_network(str(named), program) if named else None
        network = network or normalize_network(text, program)
        handle_match = HANDLE.search(text)
        handle = handle_match.group(1) if handle_match else None
        if not program.earning.social_networks or program.earning.social_follow <= 0:
            dispatcher.utter_message(text=outcome_text(program, SocialClaimOutcome("off", None, 0), None))
            return []
        if is_question(text):
            # "what about for following u on insta?": the explanation and the offer; no claim is filed.
            log.info("social.explained", network=network)
            dispatcher.utter_message(text=follow_explanation(program, network),
                                     buttons=follow_offer_buttons(program, network) + [EARN_BUTTON])
            return []

        def work(session: Session) -> Optional[SocialClaimOutcome]:
            customer = customer_for_sender(session, channel, sender_id)
            if customer is None:
                return None
            if network is None:
                return SocialClaimOutcome("unknown_network", None, program.earning.social_follow)
            return claim_social_follow(session, program, customer.id, network, handle, channel, clock.now())

        outcome = await with_store(work, write=True)
        if outcome is None:
            dispatcher.utter_message(text=guest_text(program, read_config(get_shop), "points for following us"))
            return []
        log.info("social.claim", status=outcome.status, network=outcome.network)
        buttons = network_buttons(program) if outcome.status == "unknown_network" else [EARN_BUTTON]
        dispatcher.utter_message(text=outcome_text(program, outcome, handle), buttons=buttons)
        return []
