"""The thread of a conversation: what the last answer was about, and whether the new message follows up on it.

An answer that leaves a topic open sets the `topic` slot (and `topic_ref`: the tier it named, the SKUs it
showed, the handoff request it made...). The topic stays open for the shopper's next message only: a
message that follows up on it is short and carries that topic's cues ("cheaper?" after a search, "how long
will it take" after a handoff), whatever intent the NLU guessed — the NLU reads a message alone and cannot
know that "any update?" is about the request just made. Such a message is answered by action_follow_up
(actions/follow_ups.py); StoreAction and the FAQ and fallback answers hand it over (actions/common.py).

Pure text logic: no store, no Rasa server.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, Iterable, List, Mapping, Optional, Pattern, Sequence, Tuple

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from bot.config_files import ConfigError
from bot.loyalty.program import get_program
from bot.shared.text import normalize

TOPIC_SLOT = "topic"
TOPIC_REF_SLOT = "topic_ref"
FOLLOW_UP_ACTION = "action_follow_up"
MAX_FOLLOW_UP_WORDS = 12  # a follow-up leans on the last answer; a longer message says what it is about itself


class Topic(str, Enum):
    SEARCH = "search"  # ref: the variant SKUs shown, in order
    HANDOFF = "handoff"  # ref: the handoff request's id
    TIER = "tier"  # ref: the tier named (None: the tier ladder)
    GUEST = "guest"  # a guest was told to link the chat or join
    REFERRAL_CLAIM = "referral_claim"  # ref: the friend's offer code
    SHORTFALL = "shortfall"  # ref: the reward the shopper lacks points for


def topic_events(topic: Optional[Topic], ref: Any = None) -> List[Dict[str, Any]]:
    """The slot events an answer returns to open `topic` (None: close whatever was open)."""
    return [SlotSet(TOPIC_SLOT, topic.value if topic else None), SlotSet(TOPIC_REF_SLOT, ref if topic else None)]


# ---------------------------------------------------------------------------------------------- reading the words

# Chat spellings, one meaning each (applied word by word after bot.shared.text.normalize).
SLANG: Mapping[str, str] = {
    "u": "you", "ya": "you", "ur": "your", "yr": "your", "r": "are", "wat": "what", "wut": "what", "wht": "what",
    "whats": "what is", "hw": "how", "abt": "about", "bout": "about", "n": "and", "1st": "first", "2nd": "second",
    "3rd": "third", "pls": "please", "plz": "please", "plox": "please", "thx": "thanks", "ty": "thanks",
    "im": "i am", "dont": "do not", "cant": "can not", "wont": "will not", "till": "until", "til": "until",
    "wen": "when", "gimme": "give me", "lemme": "let me", "wanna": "want to", "gonna": "going to",
    "diff": "different", "colr": "colour", "color": "colour", "colors": "colours", "smol": "small",
    "howlong": "how long", "ppl": "people", "sm1": "someone", "some1": "someone", "any1": "anyone",
    "rn": "right now", "tho": "though", "pic": "picture", "k": "ok", "kk": "ok", "okay": "ok",
    "cheapo": "cheaper", "cheapr": "cheaper", "biggr": "bigger", "bigr": "bigger", "lil": "little",
    "nah": "no", "nope": "no", "noo": "no", "nooo": "no", "mean't": "meant", "ment": "meant",
}
# Words the cues are made of: a typed word close to one of them (and not a word of its own) is read as it.
CUE_WORDS: Tuple[str, ...] = (
    "cheaper", "cheapest", "expensive", "pricier", "affordable", "bigger", "larger", "smaller", "compact",
    "colour", "colours", "different", "another", "second", "third", "first", "perks", "benefits", "update",
    "status", "request", "discount", "reward", "rewards", "link", "account", "connect", "meant", "instead",
    "tier", "level", "points", "delivery", "shipping",
)
_KNOWN_WORDS = frozenset("""
    a an the and or of for in on at to with by from it its this that these those one ones what when how long
    much many more less any some my me i you your we our us they them is are was be do does did can could will
    would should get got give have has had need want like show find tell about so then there here just also
    still yet ok yes no not thanks please hi hey hello cheap big small large colour other others option options
    size sizes same price prices cost costs money dollar dollars time take takes wait waiting news person team
    someone anyone human code codes join sign up log use used using good great fine sure maybe really very
    where which who why was it's lamp lamps sofa sofas chair chairs desk desks table tables bed rug throw
    order orders friend friends until earn earned level next top gold silver bronze platinum
""".split())


def read_words(text: str) -> str:
    """The message as cues read it: normalized, chat spellings expanded, typos of cue words mended."""
    words: List[str] = []
    for word in normalize(text).split():
        words.extend(SLANG.get(word, word).split())
    mended = []
    for word in words:
        if len(word) >= 4 and word.isalpha() and word not in _KNOWN_WORDS and word not in CUE_WORDS:
            close = difflib.get_close_matches(word, CUE_WORDS, n=1, cutoff=0.8)
            word = close[0] if close else word
        mended.append(word)
    return " ".join(mended)


# ---------------------------------------------------------------------------------------------- cues


def _pattern(*alternatives: str) -> Pattern[str]:
    return re.compile("|".join(f"(?:{alternative})" for alternative in alternatives))


@dataclass(frozen=True)
class Cue:
    """One kind of follow-up of a topic ("cheaper", "status") and the words that ask it."""

    kind: str
    pattern: Pattern[str]

    def asked_in(self, words: str) -> bool:
        return self.pattern.search(words) is not None


@dataclass(frozen=True)
class TopicCues:
    """How follow-ups of one topic read: the first cue found wins; words about another subject rule the
    message out ("how long does delivery take" after a handoff is a delivery question)."""

    topic: Topic
    cues: Tuple[Cue, ...]
    elsewhere: Optional[Pattern[str]] = None

    def about_elsewhere(self, words: str) -> bool:
        return self.elsewhere is not None and self.elsewhere.search(words) is not None

    def kind_of(self, words: str) -> Optional[str]:
        if self.about_elsewhere(words):
            return None
        return next((cue.kind for cue in self.cues if cue.asked_in(words)), None)


# Small words that say nothing about what a correction asks for ("no not for me" corrects nothing).
_EMPTY_WORDS = r"(?!(?:me|you|it|that|this|one|thanks|thank|good|fine|ok|all|now|problem|worries|way|idea)\b)"

SEARCH_CUES = TopicCues(
    Topic.SEARCH,
    (
        Cue("pick", _pattern(
            r"\b(?:the |that |this )?(?:first|second|third|last|middle|top|bottom)(?: one| option| 1| product)?\b",
            r"\b(?:number|no|option|#) ?(?:one|two|three|[123])\b", r"^#?[123]$",
            r"\b(?:tell me|more) (?:more )?(?:about|on|info|information|details)\b", r"\bmore (?:info|details)\b",
            r"\bthat one\b", r"\btell me more\b", r"\bdetails\b", r"\bmore about (?:it|that|this)\b",
        )),
        Cue("cheaper", _pattern(
            r"\bcheap(?:er|est)?\b", r"\bless (?:expensive|pricey|money|costly)\b", r"\blower (?:price|priced|cost)\b",
            r"\b(?:more )?affordable\b", r"\btoo (?:expensive|pricey|much|dear|steep)\b", r"\bbudget\b",
            r"\bout of my (?:price range|range|budget)\b", r"\bsomething for less\b",
        )),
        Cue("pricier", _pattern(
            r"\bmore expensive\b", r"\bpricier\b", r"\bhigher end\b", r"\bfancier\b", r"\bpremium\b", r"\bnicer\b",
        )),
        Cue("bigger", _pattern(
            r"\bbigger\b", r"\blarger\b", r"\bwider\b", r"\blonger\b", r"\bmore seats\b", r"\bbig(?:ger)? (?:one|size)\b",
            r"\b(?:a )?big one\b", r"\blarge (?:one|size)\b", r"\bseats more\b",
        )),
        Cue("smaller", _pattern(
            r"\bsmaller\b", r"\bmore compact\b", r"\bcompact\b", r"\bnarrower\b", r"\btiny\b", r"\blittler\b",
            r"\bsmall (?:one|size)\b", r"\bless (?:big|bulky|space)\b", r"\bfor a small\b",
        )),
        Cue("colours", _pattern(
            r"\b(?:another|other|different|more|diff|any other|what|which|else) (?:colours?|shades?|finish(?:es)?)\b",
            r"\bcome(?:s)? in (?:other|another|any|different)\b", r"\bcolours?\b", r"\bin (?:a )?different\b",
        )),
        Cue("correction", _pattern(
            r"\b(?:i )?(?:meant|mean)\b", r"\binstead\b", r"\brather\b",
            rf"^(?:no|not|actually|sorry|oops|wait|hmm)\b.*\b(?:the|a|an|in|some|for)\b {_EMPTY_WORDS}[a-z]{{3,}}",
        )),
    ),
    elsewhere=_pattern(
        r"\bpoints?\b", r"\brewards?\b", r"\btier\b", r"\bdeliver", r"\bshipping\b", r"\breturn", r"\brefund",
        r"\bmy order\b", r"\bperson\b", r"\bhuman\b", r"\bagent\b", r"\baccount\b", r"\breview\b", r"\brefer",
        r"\bhours\b", r"\bthanks?\b", r"\bbye\b",
    ),
)

HANDOFF_CUES = TopicCues(
    Topic.HANDOFF,
    (
        Cue("how_long", _pattern(
            r"\bhow long\b", r"\bhow soon\b", r"\bhow much longer\b", r"\bwhen (?:will|do|does|would|can|could|are)\b",
            r"\bwait(?:ing)? time\b", r"\beta\b", r"\bwhen (?:is|am) (?:someone|somebody|anyone|a person|i)\b",
            r"\bwhat time\b",
        )),
        Cue("status", _pattern(
            r"\bupdate\b", r"\bstatus\b", r"\bnews\b", r"\b(?:my|the|that) (?:request|ticket|case)\b",
            r"\bheard (?:back|anything)\b", r"\bstill waiting\b", r"\b(?:anyone|someone|somebody|anybody) (?:there|coming)\b",
            r"\bdid (?:they|someone|anyone|somebody) (?:see|get|read|answer|reply)\b", r"\bany (?:reply|answer|word)\b",
            r"\bwhat happens (?:now|next)\b", r"\bnow what\b",
        )),
    ),
    elsewhere=_pattern(
        r"\bdeliver", r"\bshipping\b", r"\bship\b", r"\b(?:my|the|an) order\b", r"\bparcel\b", r"\bpackage\b",
        r"\breturn", r"\brefund", r"\bpoints?\b", r"\brewards?\b", r"\bcode\b", r"\bquiz\b",
    ),
)

TIER_CUES = TopicCues(
    Topic.TIER,
    (
        Cue("perks", _pattern(
            r"\bperks?\b", r"\bbenefits?\b", r"\bprivileges?\b", r"\bwhat do(?:es)? (?:i|it|that|you|they|we) get\b",
            r"\bwhat (?:is|are) (?:the )?(?:perks|benefits|included)\b", r"\bwhat (?:do|does) (?:it|that) (?:give|include|offer|mean)\b",
            r"\bwhat(?: is|'s)? in it for me\b", r"\bwhat comes with\b", r"\bwhat (?:it|that) (?:gives|includes)\b",
        )),
        Cue("next", _pattern(
            r"\bnext (?:tier|level|one)\b", r"\bhow (?:do|can) i (?:get|reach|move|go|level)\b", r"\bhow far\b",
            r"\blevel up\b", r"\bmove up\b", r"\bhow (?:much|many) more\b", r"\bupgrade\b",
        )),
    ),
    elsewhere=_pattern(
        r"\bdeliver", r"\breturn", r"\brefund", r"\brefer", r"\bredeem\b", r"\bhistory\b", r"\bbalance\b",
        r"\bperson\b", r"\bhuman\b",
    ),
)

GUEST_CUES = TopicCues(
    Topic.GUEST,
    (
        Cue("link", _pattern(
            r"\blink\b", r"\bconnect\b", r"\bsync\b", r"\bsign in\b", r"\blog in\b", r"\blogin\b",
            r"\bhow do i do (?:that|it|this)\b", r"\bwhere do i (?:get|find)\b", r"\b(?:the|a|get|that) code\b",
            r"\baccount page\b", r"\balready (?:a )?member\b", r"\bi (?:have|got) an account\b",
        )),
        Cue("join", _pattern(
            r"\bjoin\b", r"\bsign ?up\b", r"\bregister\b", r"\bcreate (?:an )?account\b", r"\bnot a member\b",
            r"\bbecome a member\b", r"\benrol+\b",
        )),
        Cue("perks", _pattern(r"\bperks?\b", r"\bbenefits?\b", r"\bwhat do (?:members|i) get\b", r"\bwhat is in it for me\b")),
    ),
    elsewhere=_pattern(r"\bdeliver", r"\breturn", r"\brefund", r"\brefer", r"\bfriend", r"\bperson\b", r"\bhuman\b"),
)

REFERRAL_CLAIM_CUES = TopicCues(
    Topic.REFERRAL_CLAIM,
    (
        Cue("offer", _pattern(
            r"\bdiscount\b", r"\bhow much (?:off|do i save|is it|will i save)\b", r"\bwhat do i get\b", r"\bpercent\b",
            r"%", r"\b(?:the|my|that) (?:code|offer|deal)\b", r"\boffer\b", r"\bdeal\b", r"\bsave\b", r"\boff\b",
            r"\bexpire", r"\bvalid\b", r"\bhow (?:do|can|to) i use\b", r"\bwhere do i (?:put|enter|use|type)\b",
            r"\bminimum\b", r"\bwhat is it\b", r"\bwhat do i do (?:now|with it)\b",
        )),
    ),
    elsewhere=_pattern(r"\bmy (?:own )?(?:link|referral)\b", r"\brefer (?:a|my)\b", r"\bperson\b", r"\bhuman\b"),
)

SHORTFALL_CUES = TopicCues(
    Topic.SHORTFALL,
    (
        Cue("cheapest", _pattern(
            r"\bcheapest\b", r"\blowest\b", r"\bsmallest\b", r"\bleast points\b", r"\bcheaper\b",
            r"\bwhat (?:can|could) i (?:get|afford|redeem)\b", r"\banything i can (?:get|afford)\b",
            r"\bis there (?:anything|something) (?:i can|for less)\b", r"\bfewer points\b",
        )),
        Cue("how_long", _pattern(
            r"\bhow long\b", r"\bhow (?:many|much) more\b", r"\bhow far\b", r"\bwhen (?:can|will|could|do) i\b",
            r"\bhow (?:do|can) i get (?:it|there|that|enough|one)\b", r"\buntil i\b", r"\bhow (?:much|many) (?:do i )?(?:need|have)\b",
            r"\bhow much (?:more )?(?:do i )?(?:have to|need to) (?:spend|buy|shop)\b", r"\bhow many points (?:do i need|left|more)\b",
            r"\bhow soon\b",
        )),
    ),
    elsewhere=_pattern(r"\bdeliver", r"\bshipping time\b", r"\breturn", r"\brefund", r"\bperson\b", r"\bhuman\b"),
)

CUES: Mapping[Topic, TopicCues] = {
    cues.topic: cues for cues in (SEARCH_CUES, HANDOFF_CUES, TIER_CUES, GUEST_CUES, REFERRAL_CLAIM_CUES, SHORTFALL_CUES)
}


# ---------------------------------------------------------------------------------------------- the open topic


@dataclass(frozen=True)
class OpenTopic:
    topic: Topic
    ref: Any


@dataclass(frozen=True)
class FollowUp:
    """A message read against the open topic: what it asks (`kind`, a cue of the topic)."""

    topic: Topic
    kind: str
    ref: Any
    text: str  # as the shopper typed it
    words: str  # as cues read it (read_words)


def _since_previous_message(events: Sequence[Dict[str, Any]]) -> Iterable[Dict[str, Any]]:
    """The events of the bot's answer to the shopper's previous message (between it and the latest one)."""
    users = [position for position, event in enumerate(events) if event.get("event") == "user"]
    if len(users) < 2:
        return ()
    return events[users[-2] + 1:users[-1]]


def open_topic(tracker: Tracker) -> Optional[OpenTopic]:
    """The topic the answer to the previous message left open (set in that answer), if any."""
    topic: Optional[str] = None
    ref: Any = None
    set_here = False
    for event in _since_previous_message(tracker.events):
        if event.get("event") == "slot" and event.get("name") == TOPIC_SLOT:
            topic, set_here = event.get("value"), True
        elif event.get("event") == "slot" and event.get("name") == TOPIC_REF_SLOT:
            ref = event.get("value")
        elif event.get("event") in ("restart", "session_started"):
            topic, set_here = None, False
    if not set_here or not topic:
        return None
    try:
        return OpenTopic(Topic(topic), ref)
    except ValueError:
        return None


def names_a_tier(words: str) -> Optional[str]:
    """The program's tier a message names ("and gold?"), if any."""
    try:
        tiers = [tier.name for tier in get_program().tiers]
    except ConfigError:
        return None
    found = set(words.split())
    return next((name for name in tiers if name.lower() in found), None)


def read_follow_up(tracker: Tracker) -> Optional[FollowUp]:
    """The latest message as a follow-up of the open topic, or None (no topic open, a form running, a button,
    a long message, or no cue of the topic)."""
    if tracker.active_loop_name:
        return None  # a form asks its own questions and reads its own answers
    text = str((tracker.latest_message or {}).get("text") or "").strip()
    if not text or text.startswith("/"):
        return None  # a button's payload says exactly what it wants
    current = open_topic(tracker)
    if current is None:
        return None
    words = read_words(text)
    if not words or len(words.split()) > MAX_FOLLOW_UP_WORDS:
        return None
    kind = CUES[current.topic].kind_of(words)
    if kind is None and current.topic is Topic.TIER and not TIER_CUES.about_elsewhere(words):
        kind = "perks" if names_a_tier(words) else None  # "and gold?" after a tier answer
    if kind is None:
        return None
    return FollowUp(current.topic, kind, current.ref, text, words)
