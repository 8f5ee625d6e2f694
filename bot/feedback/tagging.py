"""Tags for a shopper's "why": its sentiment (positive | neutral | negative) and the topics it is about.

Rules on spaCy's lemmas (en_core_web_sm, loaded once, offline), so "arrived", "arrives" and "arriving" are
one word to them:

- Topics (TOPICS, the console's filter) come from a PhraseMatcher on lemmas of each topic's words
  ("delivery", "courier", "customer service", "too small") and a few Matcher patterns ("run small").
  A word that is only a complaint ("late", "slow to reply") counts for its topic only when it is not
  negated: "it wasn't late" says nothing about shipping, "it was late" does.
- Sentiment adds up the polar words and phrases found (lemmas, e.g. "love" +1, "broken" −1). A word
  negated by "not", "n't", "never", "no", "nobody", "without", … within the three words before it (in the
  same clause) counts the other way: "not bad" is positive, "not great" negative. Verbs of what should
  have happened ("arrive", "fit", "work", "answer", "receive") count only when negated: "it arrived on
  Monday" is neutral, "it never arrived" and "nobody answered" are negative. After "but" or "however" the
  words count one and a half times ("lovely lamp but it arrived broken" is negative). A total of at
  least +0.5 is positive, at most −0.5 negative, anything between neutral.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

TOPICS: Tuple[str, ...] = (
    "shipping", "quality", "price", "support", "sizing", "packaging", "product", "website", "returns", "payment",
    "rewards",
)
SENTIMENTS = ("positive", "neutral", "negative")
MAX_TAGGED_CHARS = 5000  # longer comments are tagged on their beginning

# Topic words, as written (the matcher compares lemmas, so "deliveries" or "delivered" match "delivery",
# "deliver"). Complaint-only words are in _TOPIC_COMPLAINTS: they count for their topic when not negated.
_TOPIC_WORDS: Dict[str, Tuple[str, ...]] = {
    "shipping": ("delivery", "deliver", "shipping", "ship", "shipment", "dispatch", "courier", "parcel",
                 "package", "postage", "in the post", "postman", "tracking", "track", "arrive", "arrival", "transit",
                 "on time", "next day", "carrier", "dpd", "ups", "fedex", "usps", "royal mail", "driver"),
    "quality": ("quality", "broken", "break", "damage", "damaged", "crack", "cracked", "scratch", "scratched",
                "dent", "dented", "flimsy", "sturdy", "solid", "durable", "well made", "badly made", "cheaply made",
                "craftsmanship", "defect", "defective", "faulty", "chip", "chipped", "stain", "stained", "tear",
                "torn", "rip", "ripped", "wobble", "wobbly", "fall apart", "peel", "fade", "fray", "shatter",
                "shattered", "crushed", "missing part", "missing piece", "missing screw"),
    "price": ("price", "pricing", "expensive", "cheap", "cost", "overpriced", "pricey", "affordable", "value",
              "value for money", "worth the money", "bargain", "discount", "sale", "rip off", "money"),
    "support": ("support", "customer service", "customer support", "service", "staff", "team", "agent",
                "reply", "respond", "response", "answer", "email", "phone call", "call", "contact", "helpful",
                "unhelpful", "rude", "friendly", "polite", "get back to me", "live chat", "complaint",
                "assistant", "help"),
    "sizing": ("size", "sizing", "fit", "too small", "too big", "too large", "too tight", "too loose",
               "too short", "too long", "too narrow", "too wide", "smaller than", "bigger than", "larger than",
               "dimension", "measurement", "tight", "loose"),
    "packaging": ("packaging", "packing", "packed", "box", "wrap", "wrapping", "bubble wrap", "cardboard",
                  "plastic", "unboxing", "padding", "packaged"),
    "product": ("product", "item", "design", "colour", "color", "look", "style", "material", "fabric", "finish",
                "comfortable", "uncomfortable", "comfy", "as described", "as pictured", "photo", "picture",
                "lamp", "chair", "table", "throw", "runner", "desk", "sofa", "rug", "cushion", "dinner set",
                "plate", "mug", "shelf", "light", "bulb"),
    "website": ("website", "site", "web site", "checkout", "check out", "app", "page", "link", "login",
                "log in", "sign in", "account", "password", "search", "navigate", "navigation", "cart", "basket",
                "bug", "crash", "glitch", "load", "online shop", "web shop", "chatbot", "bot"),
    "returns": ("return", "returns", "refund", "exchange", "send back", "send it back", "replacement",
                "money back", "return label"),
    "payment": ("payment", "pay", "paypal", "charge", "charged", "card", "invoice", "transaction", "klarna",
                "apple pay", "billing"),
    "rewards": ("points", "point", "reward", "loyalty", "tier", "voucher", "coupon", "code", "referral",
                "vip"),
}
_TOPIC_COMPLAINTS: Dict[str, Tuple[str, ...]] = {
    "shipping": ("late", "delay", "delayed", "lost in the post", "lost in transit", "got lost", "never came",
                 "still waiting", "take forever", "take ages", "take weeks"),
    "support": ("ignore", "ignored", "no reply", "no response"),
}

# Polar words and phrases (as written; compared as lemmas) and their weight.
_POSITIVE: Tuple[str, ...] = (
    "good", "great", "excellent", "amazing", "awesome", "love", "lovely", "perfect", "perfectly", "beautiful",
    "beautifully", "happy", "fast", "quick", "quickly", "speedy", "friendly", "helpful",
    "nice", "fantastic", "wonderful", "brilliant", "superb", "recommend", "comfortable", "comfy", "sturdy",
    "solid", "easy", "smooth", "well made", "on time", "as described", "as pictured", "worth it",
    "worth the money", "value for money", "gorgeous", "impressive", "best", "cosy",
    "cozy", "soft", "stunning", "polite", "like", "enjoy", "efficient",
    "prompt", "promptly", "reasonable", "affordable", "bargain", "elegant", "can't wait",
    "cannot wait", "well packed", "well packaged", "carefully packed", "securely packed", "flawless", "durable",
)
_NEGATIVE: Tuple[str, ...] = (
    "bad", "terrible", "awful", "horrible", "poor", "poorly", "disappointed", "disappointing", "disappoint",
    "broken", "break", "damaged", "damage", "late", "slow", "slowly", "rude", "unhelpful", "useless", "worst",
    "hate", "flimsy", "wrong", "missing", "lost", "problem", "issue", "crack", "cracked", "scratch", "scratched",
    "defective", "faulty", "expensive", "overpriced", "annoying", "annoyed", "frustrating", "frustrated",
    "angry", "upset", "unhappy", "charged twice", "double charged", "overcharged", "delay", "delayed", "still waiting", "fall apart", "take forever",
    "take ages", "waste of money", "waste", "ugly", "uncomfortable", "confusing", "complicated", "stained",
    "chipped", "wobbly", "smell", "stink", "mess", "messy", "dreadful", "mediocre", "rip off", "scam",
    "ignore", "ignored", "complaint", "cheaply made", "badly made", "too small", "too big", "too large",
    "too tight", "too loose", "too short", "too long", "not as described", "shame", "pity", "dirty", "torn",
    "ripped", "dented", "shattered", "crash", "bug", "glitch", "no reply", "no response", "never again",
    "sadly", "unfortunately", "fail", "crushed", "squashed", "too high", "bit high", "steep", "have to return",
    "have to send back", "had to return",
)
# Mild words: alone they do not make a comment positive ("it's fine"); with others they tip the balance.
_WEAK_POSITIVE: Tuple[str, ...] = ("fine", "ok", "okay", "thank", "thanks", "decent", "alright", "not bad")
_WEAK_WEIGHT = 0.4
# Matched as written, not as lemmas ("pleased" would otherwise be "please", as in "a refund please").
_POSITIVE_FORMS: Tuple[str, ...] = ("pleased", "delighted", "impressed", "satisfied", "thrilled")
# What should have happened: said plainly these are neutral ("it arrived on Monday"); negated they are a
# complaint ("it never arrived", "nobody answered", "it doesn't fit").
_EXPECTED: Tuple[str, ...] = (
    "arrive", "come", "fit", "work", "answer", "reply", "respond", "receive", "get back to me", "turn up",
    "show up", "deliver", "help", "match", "use", "load",
)
_EXPECTED_WEIGHT = 1.5
_NEGATORS: FrozenSet[str] = frozenset({
    "not", "n't", "never", "no", "nobody", "nothing", "none", "neither", "nor", "without", "hardly", "barely",
    "noone", "nowhere", "lack", "fail", "cannot",
})
_NEGATION_WINDOW = 3
_CLAUSE_BREAKS: FrozenSet[str] = frozenset({
    ".", ",", ";", ":", "!", "?", "but", "however", "although", "though", "and", "yet", "so", "because", "-",
})
_CONTRAST: FrozenSet[str] = frozenset({"but", "however", "though", "yet"})
_CONTRAST_WEIGHT = 1.5


@dataclass(frozen=True)
class FeedbackTags:
    sentiment: str  # positive | neutral | negative
    topics: List[str] = field(default_factory=list)  # names from TOPICS, in TOPICS order
    score: float = 0.0  # the sentiment total the label came from


class _Tagger:
    """The spaCy pipeline and matchers, built once per process (loading the model takes a second)."""

    def __init__(self) -> None:
        import spacy
        from spacy.matcher import Matcher, PhraseMatcher

        # NER is not needed; the parser is (it splits sentences) and the lemmatizer needs the tagger.
        self.nlp = spacy.load("en_core_web_sm", exclude=["ner"])
        self.topics = PhraseMatcher(self.nlp.vocab, attr="LEMMA")
        self.polar = PhraseMatcher(self.nlp.vocab, attr="LEMMA")
        self.forms = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        self.forms.add("positive", [self.nlp.make_doc(word) for word in _POSITIVE_FORMS])
        self.patterns = Matcher(self.nlp.vocab)
        self.weights: Dict[str, float] = {}

        def lemma_docs(phrases: Iterable[str]) -> List[Any]:
            # Each phrase twice: as spaCy lemmatises it alone ("arrived" → "arrive") and with its words as
            # their own lemmas, because a word alone can be tagged differently than in a sentence
            # ("packaging" alone is read as the verb "package").
            docs = []
            for phrase in phrases:
                docs.append(self.nlp(phrase))
                literal = self.nlp.make_doc(phrase)
                for token in literal:
                    token.lemma_ = token.lower_
                docs.append(literal)
            return docs

        for topic, words in _TOPIC_WORDS.items():
            self.topics.add(f"topic:{topic}", lemma_docs(words))
        for topic, words in _TOPIC_COMPLAINTS.items():
            self.topics.add(f"complaint:{topic}", lemma_docs(words))
        for name, words, weight in (("positive", _POSITIVE, 1.0), ("negative", _NEGATIVE, -1.0),
                                    ("weak", _WEAK_POSITIVE, _WEAK_WEIGHT), ("expected", _EXPECTED, 0.0)):
            self.polar.add(name, lemma_docs(words))
            self.weights[name] = weight
        # "It didn't last a month": quality, and a complaint when negated (but "last week" is neither).
        self.patterns.add("topic:quality", [[{"LEMMA": "last", "POS": "VERB"}]])
        self.patterns.add("expected", [[{"LEMMA": "last", "POS": "VERB"}]])
        # Sizing said in other ways: "runs small", "came up large", "a size too big".
        self.patterns.add("topic:sizing", [
            [{"LEMMA": {"IN": ["run", "come"]}}, {"LOWER": "up", "OP": "?"},
             {"LOWER": {"IN": ["small", "large", "big", "tight", "short", "long"]}}],
            [{"LOWER": "size"}, {"LOWER": {"IN": ["up", "down"]}}],
        ])
        self.patterns.add("negative", [
            [{"LEMMA": {"IN": ["run", "come"]}}, {"LOWER": "up", "OP": "?"},
             {"LOWER": {"IN": ["small", "large", "big", "tight", "short"]}}],
            [{"LEMMA": "take"}, {"LIKE_NUM": True, "OP": "?"}, {"LOWER": {"IN": ["weeks", "months"]}}],
            [{"LEMMA": "wait"}, {"LOWER": "for", "OP": "?"}, {"LIKE_NUM": True, "OP": "?"},
             {"LOWER": {"IN": ["weeks", "months"]}}],
        ])

    def tag(self, text: str) -> FeedbackTags:
        doc = self.nlp(text[:MAX_TAGGED_CHARS])
        for token in doc:  # "Checkout" at the start of a sentence is a proper noun whose lemma keeps its capital
            token.lemma_ = token.lemma_.lower()
        topics: Set[str] = set()
        score = 0.0
        for match_id, start, end in self.topics(doc):
            kind, topic = self.nlp.vocab.strings[match_id].split(":", 1)
            if kind == "topic" or not _negated(doc, start):
                topics.add(topic)
        for match_id, start, end in self.patterns(doc):
            label = self.nlp.vocab.strings[match_id]
            if label.startswith("topic:"):
                topics.add(label.split(":", 1)[1])
            elif label == "expected":
                score += (-_EXPECTED_WEIGHT if _negated(doc, start) else 0.0) * _contrast_weight(doc, start)
            elif not _negated(doc, start):
                score += -1.0 * _contrast_weight(doc, start)
        for start, end, weight in self._polar_spans(doc):
            negated = _negated(doc, start)
            if weight == 0.0:  # expected events count only when they did not happen
                value = -_EXPECTED_WEIGHT if negated else 0.0
            else:
                value = -weight if negated else weight
            score += value * _contrast_weight(doc, start)
        if score >= 0.5:
            sentiment = "positive"
        elif score <= -0.5:
            sentiment = "negative"
        else:
            sentiment = "neutral"
        return FeedbackTags(sentiment, [topic for topic in TOPICS if topic in topics], round(score, 2))

    def _polar_spans(self, doc: Any) -> List[Tuple[int, int, float]]:
        """Polar matches, longest first where they overlap ("not as described" over "as described",
        "well made" over "made"); "like" only as a verb ("looks like the photo" is not praise)."""
        matches = list(self.polar(doc)) + list(self.forms(doc))
        found = sorted(
            ((start, end, self.weights[self.nlp.vocab.strings[match_id]]) for match_id, start, end in matches),
            key=lambda item: (-(item[1] - item[0]), item[0]),
        )
        taken: Set[int] = set()
        kept: List[Tuple[int, int, float]] = []
        for start, end, weight in found:
            if any(index in taken for index in range(start, end)):
                continue
            if end - start == 1 and doc[start].lemma_.lower() == "like" and not _liking(doc, start):
                continue
            taken.update(range(start, end))
            kept.append((start, end, weight))
        return sorted(kept)


def _negated(doc: Any, start: int) -> bool:
    """A negator ("not", "n't", "never", "no one", "without", …) within the few words before `start`, in the
    same clause and sentence."""
    for index in range(start - 1, max(start - 1 - _NEGATION_WINDOW, -1), -1):
        token = doc[index]
        if token.lower_ in _CLAUSE_BREAKS:
            return False
        if token.lower_ in _NEGATORS or token.lemma_.lower() in _NEGATORS or token.dep_ == "neg":
            return True
        if token.is_sent_start:
            return False
    return False


def _liking(doc: Any, index: int) -> bool:
    """"like" as praise: a verb, and not "would like" / "'d like" (a request)."""
    if doc[index].pos_ != "VERB":
        return False
    before = doc[index - 1].lower_ if index > 0 else ""
    return before not in ("would", "'d", "d")


def _contrast_weight(doc: Any, start: int) -> float:
    """Words after "but"/"however" in their sentence weigh more: the shopper's point comes last."""
    sentence_start = doc[start].sent.start
    for index in range(start - 1, sentence_start - 1, -1):
        if doc[index].lower_ in _CONTRAST:
            return _CONTRAST_WEIGHT
    return 1.0


_tagger: Optional[_Tagger] = None
_lock = threading.Lock()


def _get_tagger() -> _Tagger:
    global _tagger
    if _tagger is None:
        with _lock:
            if _tagger is None:
                _tagger = _Tagger()
    return _tagger


def tag_feedback(text: str) -> FeedbackTags:
    """Sentiment and topics of a comment; an empty one is neutral with no topics."""
    if not text or not text.strip():
        return FeedbackTags("neutral", [], 0.0)
    return _get_tagger().tag(text)
