"""Is the shopper asking about something, or asking for it?

Actions that write (a follow claim, a review, a redemption, a referral link or a friend's code, linking
the chat) start only on a clear request ("I followed you on insta", "redeem my $10", "leave a review", a
button) or a confirmation. A question about them ("what about for following u on insta?", "can I refer my
friends", "can i leave a review?") gets the explanation and the offer — a button that does it — and
writes nothing. The NLU gives the same intent to both; this module tells them apart by the wording.

Read in this order, the first that fits wins:
  1. a button press (the payload starts with "/") is a request;
  2. saying one has done it ("I followed you", "my code is …", "my friend gave me …") is a request, even
     with a question after it ("I followed you on insta, do I get points?");
  3. wanting to know ("how do", "I want to know", "tell me about", "do I get") is a question;
  4. asking for it ("redeem my $10", "I want to …", "can you link my account", "please", "can I have my
     link") is a request;
  5. a question's shape ("?", "can I", "what about", "is there", a question word first) is a question;
  6. anything else is a request (the NLU already said what it is about).
"""
from __future__ import annotations

import re

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})

# 2. Having done it, or handing over what it needs. Not after "if"/"when"/"once" ("if I follow you, ...").
_DONE_IT = re.compile(
    r"(?<!\bif )(?<!\bwhen )(?<!\bonce )(?<!\bdo )"
    r"\b(?:i|i'?ve|i have|i'?m|im|i am|just)\s+(?:just\s+|already\s+|now\s+)?"
    r"(?:followed|follow|following|liked|subscribed|got a code|have a code)\b"
    r"|\bmy (?:friend|mate|buddy|sister|brother|mum|mom|wife|husband|partner)'?s? (?:gave|sent|shared|referred)\b"
    r"|\b(?:gave|sent) me (?:a|the|his|her|their|this) (?:code|link)\b"
    r"|\bmy (?:link |referral |friend'?s? )?code is\b|\bhere'?s? (?:is )?my code\b|\bhere is the code\b"
)

# 3. Wanting to know about it.
_WANTS_TO_KNOW = re.compile(
    r"\b(?:want|wanted|like|need) to know\b|\bwanna know\b|\bwondering\b|\bi wonder\b|\bcurious\b|\bany idea\b"
    r"|\btell me (?:about|how|what|if|whether|more)\b|\bexplain\b|\bis it possible\b|\bwhat happens\b"
    r"|\bwhat if\b|\bhow (?:do|does|did|can|could|would|will|should|much|many|long|to|it works)\b"
    r"|\b(?:do|would|will|could|can) (?:i|u|you|we) (?:get|earn|receive|still get)\b(?! my\b)"
    r"|\bdo (?:you|u) (?:give|do|offer|have|pay|reward)\b|\bis there\b|\bare there\b"
)

# 4. Asking for it: an imperative first, wanting it, or a polite request.
_COMMANDS = (
    "redeem", "use", "apply", "claim", "link", "connect", "transfer", "pass", "put", "give", "send", "get",
    "show", "write", "leave", "review", "rate", "start", "open", "add", "sign", "refer", "invite", "share",
    "talk", "speak", "let", "book", "spend", "cash", "take", "make", "create", "generate", "gimme", "lemme",
    "pls", "plz", "please", "my",
)
_ASKS_FOR_IT = re.compile(
    r"^(?:ok(?:ay)?,? |yes,? |yeah,? |right,? |so,? |then,? |now,? |hi,? |hey,? )?(?:" + "|".join(_COMMANDS) + r")\b"
    r"|\bi (?:want|wanna|need|would like)\b|\bi'?d like\b|\bi'?m (?:going|gonna)\b|\bim (?:going|gonna)\b"
    r"|\b(?:can|could|would|will|cn|cud) (?:you|u|ya) (?:please |pls |plz )?(?!tell\b|explain\b)[a-z]"
    r"|\b(?:please|pls|plz)\b"
    r"|\b(?:can|could|may) i (?:please |pls |plz )?(?:have|get) (?:my|me)\b"
)

# 5. A question's shape.
_QUESTION_WORDS = (
    "what", "whats", "what's", "wat", "wats", "wut", "how", "hows", "how's", "hw", "when", "where", "why",
    "who", "which", "is", "isnt", "isn't", "are", "arent", "aren't", "do", "does", "did", "dont", "don't",
    "can", "cn", "could", "may", "should", "will", "would", "am", "any", "anything", "r", "u",
)
_QUESTION_SHAPE = re.compile(
    r"\?|^(?:so |and |but |ok |hey |hi )?(?:" + "|".join(re.escape(word) for word in _QUESTION_WORDS) + r")\b"
    r"|\bwhat about\b|\bhow about\b|\bcan i\b|\bcould i\b|\bmay i\b|\bam i able\b|\bis it ok\b"
)


def _normalised(text: str) -> str:
    return " ".join(text.translate(_APOSTROPHES).lower().split())


def is_question(text: str) -> bool:
    """True when `text` asks about an action rather than asking for it (the module docstring's order)."""
    message = _normalised(text or "")
    if not message or message.startswith("/"):
        return False
    if _DONE_IT.search(message):
        return False
    if _WANTS_TO_KNOW.search(message):
        return True
    if _ASKS_FOR_IT.search(message):
        return False
    return bool(_QUESTION_SHAPE.search(message))
