"""Social-follow claims: a shopper says they follow the shop on a network; the merchant checks and approves,
which pays earning.social_follow once per network per customer."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.advocacy.moderation import ModerationError, ModerationResult, moderate, reason_sentence
from bot.identity import identity_channel
from bot.loyalty.earning import Credit, credit_for
from bot.loyalty.ledger import LedgerError, find_entry
from bot.loyalty.program import Program
from bot.models import SocialFollowClaim
from bot.shared.text import normalize

MAX_NETWORK_TEXT = 200
# What shoppers call the networks → the name a program configures.
_ALIASES = {
    "instagram": "instagram", "insta": "instagram", "ig": "instagram", "instagramm": "instagram",
    "facebook": "facebook", "fb": "facebook",
    "tiktok": "tiktok", "tiktock": "tiktok",
    "youtube": "youtube", "yt": "youtube",
    "pinterest": "pinterest",
    "twitter": "x",
}
_DISPLAY_NAMES = {"tiktok": "TikTok", "youtube": "YouTube", "linkedin": "LinkedIn", "x": "X"}
_HANDLE = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class SocialClaimOutcome:
    # pending (new claim) | already_pending | already_approved | already_rejected | unknown_network
    # | off (the program pays nothing for follows)
    status: str
    network: Optional[str]
    points: int  # what an approval pays


def normalize_network(text: str, program: Program) -> Optional[str]:
    """The configured network a shopper means: "insta", "IG" → instagram, "fb" → facebook, "tik tok" → tiktok,
    also inside a sentence ("I follow you on insta"). None when it names no configured network, or two."""
    configured = program.earning.social_networks
    words = re.findall(r"[a-z0-9]+", normalize((text or "")[:MAX_NETWORK_TEXT]))
    whole = _network("".join(words), configured)
    if whole is not None:
        return whole
    # Single words and pairs of neighbours ("tik tok").
    phrases = words + [first + second for first, second in zip(words, words[1:])]
    found = {network for network in (_network(phrase, configured) for phrase in phrases) if network}
    return found.pop() if len(found) == 1 else None


def network_name(network: str) -> str:
    """How a network is written in a message: Instagram, TikTok."""
    return _DISPLAY_NAMES.get(network, network.capitalize())


def claim_social_follow(
    session: Session, program: Program, customer_id: int, network: str, handle: Optional[str], channel: str,
    now: datetime,
) -> SocialClaimOutcome:
    """Record the customer's claim to follow the shop on a network for the merchant to check, once per network."""
    points = program.earning.social_follow
    name = normalize_network(network, program)
    if points <= 0:
        return SocialClaimOutcome("off", name, 0)
    if name is None:
        return SocialClaimOutcome("unknown_network", None, points)
    existing = _find(session, customer_id, name)
    if existing is not None:
        return SocialClaimOutcome(f"already_{existing.status}", name, points)
    if _already_paid(session, _credit(program, customer_id, name, now)):
        # Credited before claims existed in chat (store API or `points credit`): nothing left to claim.
        return SocialClaimOutcome("already_approved", name, points)
    claim = SocialFollowClaim(
        customer_id=customer_id, network=name, handle=_clean_handle(handle), channel=identity_channel(channel),
        status="pending", points_awarded=0, created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(claim)
            session.flush()
    except IntegrityError:  # the same claim sent twice at once
        found = _find(session, customer_id, name)
        if found is None:
            raise
        return SocialClaimOutcome(f"already_{found.status}", name, points)
    return SocialClaimOutcome("pending", name, points)


def moderate_social_claim(
    session: Session, program: Program, claim_id: int, *, approve: bool, actor: str, note: Optional[str],
    now: datetime,
) -> ModerationResult:
    """Approve (pays earning.social_follow once for that network) or reject (with the reason the shopper is
    told) a pending claim."""
    return moderate(session, program, SocialFollowClaim, claim_id, what="social", approve=approve,
                    actor=actor, note=note, now=now,
                    credit_of=lambda claim: _credit(program, claim.customer_id, claim.network, now),
                    message_of=_message)


def _network(phrase: str, configured: tuple) -> Optional[str]:
    for name in (phrase, _ALIASES.get(phrase)):
        if name and name in configured:
            return name
    return None


def _clean_handle(handle: Optional[str]) -> Optional[str]:
    """The shopper's name on the network ("@ann.smith" → "ann.smith"); anything else is not kept."""
    text = (handle or "").strip().lstrip("@")
    return text if _HANDLE.fullmatch(text) else None


def _credit(program: Program, customer_id: int, network: str, now: datetime) -> Credit:
    try:
        return credit_for(program, customer_id, "social_follow", network, now)
    except LedgerError:  # the network was taken out of the program since the claim
        raise ModerationError(f"{network} is no longer one of the program's social networks") from None


def _find(session: Session, customer_id: int, network: str) -> Optional[SocialFollowClaim]:
    return session.execute(
        select(SocialFollowClaim).where(SocialFollowClaim.customer_id == customer_id, SocialFollowClaim.network == network)
    ).scalar_one_or_none()


def _already_paid(session: Session, credit: Credit) -> bool:
    return find_entry(session, credit.action, credit.key) is not None


def _message(claim: SocialFollowClaim, approved: bool, points: int, note: Optional[str]) -> str:
    network = network_name(claim.network)
    if not approved:
        return f"Thanks for following us on {network}. We couldn't confirm the follow: {reason_sentence(note)}"
    added = f" We've added {points:,} points to your account." if points else ""
    return f"Thanks for following us on {network}!{added}"
