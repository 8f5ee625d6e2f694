"""Typed answers to a quiz question, read the way a shop assistant would: the option's label, id or a synonym
anywhere in the message ("it's for the dining room"), a typo ("wallnut"), another form of the word ("i stand
most of the day" → "Standing desk"), a position ("the first one", "option 2", "first and third"), a number
at a question whose options are numbers of people ("usually six of us" → "6 or more"), and an amount at a
budget question ("under 400 bucks", "four hundred max"). Pure functions over a Question; the conversation
(bot.quiz.runs) decides what a message that fits no option is."""
from __future__ import annotations

import difflib
import re
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple

from bot.quiz.definition import Question
from bot.shared.amounts import BUDGET_WORDS, Budget, parse_budget, spelled_numbers
from bot.shared.text import FUZZY_CUTOFF, FUZZY_MIN_CHARS, normalize, stem

EXACT = 1.0
STEMMED = 0.99  # "standing" for "stand": as good as the phrase itself
# Words that carry no answer: left out when judging how much of a message the options account for, so
# "i stand most of the day" is all answer and "how many points do I have" mostly not.
FILLER_WORDS = frozenset("""
    i im i'm id i'd ive we were we're our us my me mine you it its it's that this the a an and or but so
    for of to in on at by with from is are be been am was do does is some something please pls plz
    like just really very mostly most usually probably maybe perhaps think guess would want need um uh
    well yeah yes ok okay oh hmm lol thanks thx go with take one ones pretty quite kinda kind sort tbh
    honestly actually definitely def mainly all day days time whole every
""".split())
_ORDINALS: Dict[str, int] = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "fifth": 5,
    "5th": 5, "sixth": 6, "6th": 6, "last": -1, "top": 1,
}
# What may surround positions in "the first one", "option 2 please", "first and third", "number 1".
_ORDINAL_FILLER = FILLER_WORDS | {"option", "options", "number", "no", "both", "them", "answer", "button", "choice",
                                  "pick", "choose", "id", "say", "let's", "lets", "then", "too", "also", "plus"}
_POSITION_WORDS = frozenset({"option", "number", "no", "choice"})
_SPELLED_SCALES = frozenset({"hundred", "thousand", "grand"})
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


# ---------------------------------------------------------------------------------------------
# Phrases


def _stems(words: Sequence[str]) -> Tuple[str, ...]:
    return tuple(stem(word) for word in words)


def _spans(question: Question, tokens: List[str]) -> List[Tuple[int, int, str, float]]:
    """(start, end, option id, quality) for phrases of the question found in the tokens: exact phrases
    (quality 1), the same words inflected otherwise (STEMMED), and close spellings (difflib ratio ≥
    FUZZY_CUTOFF)."""
    found: List[Tuple[int, int, str, float]] = []
    phrases = [(phrase.split(), option_id) for phrase, option_id in question.match_keys]
    token_stems = _stems(tokens)
    for words, option_id in phrases:
        size = len(words)
        word_stems = _stems(words)
        for start in range(len(tokens) - size + 1):
            if tokens[start:start + size] == words:
                found.append((start, start + size, option_id, EXACT))
            elif token_stems[start:start + size] == word_stems and len("".join(word_stems)) >= 3:
                found.append((start, start + size, option_id, STEMMED))
    exact_cover = {i for start, end, _, _ in found for i in range(start, end)}
    for words, option_id in phrases:
        size = len(words)
        phrase = " ".join(words)
        if len(phrase) < FUZZY_MIN_CHARS:
            continue
        for start in range(len(tokens) - size + 1):
            if any(i in exact_cover for i in range(start, start + size)):
                continue
            gram = " ".join(tokens[start:start + size])
            # Typos rarely hit the first letter or change a short word's length by two: requiring both keeps
            # "delivery" from reading as "living" and "long" as "lounge".
            if len(gram) < FUZZY_MIN_CHARS or gram == phrase or gram[0] != phrase[0]:
                continue
            if min(len(gram), len(phrase)) < 7 and abs(len(gram) - len(phrase)) > 1:
                continue
            ratio = difflib.SequenceMatcher(None, gram, phrase).ratio()
            if ratio >= FUZZY_CUTOFF:
                found.append((start, start + size, option_id, ratio))
    # Longest and surest first; keep the spans that do not overlap a better one.
    found.sort(key=lambda span: (-(span[3] >= STEMMED), -(span[1] - span[0]), -span[3], span[0]))
    kept: List[Tuple[int, int, str, float]] = []
    covered: set = set()
    for span in found:
        cells = set(range(span[0], span[1]))
        if cells & covered:
            continue
        kept.append(span)
        covered |= cells
    return kept


# ---------------------------------------------------------------------------------------------
# Positions, numbers and amounts


def _positions(question: Question, tokens: List[str]) -> Tuple[Tuple[str, ...], List[int]]:
    """The options a message picks by position ("the first one", "option 2", "2nd and last") and the tokens
    that said so; nothing unless the whole message is positions and filler. A bare digit ("2") is a position
    only where the options themselves are not numbers."""
    if not tokens:
        return (), []
    count = len(question.options)
    numbered = _count_ranges(question) is not None or question.is_budget or any(
        any(character.isdigit() for character in phrase) for phrase, _ in question.match_keys)
    picked: List[int] = []
    used: List[int] = []
    listing = False  # after "option 1", "2" is a position too ("number 1 and 2")
    for index, token in enumerate(tokens):
        position: Optional[int] = _ORDINALS.get(token)
        after_word = index > 0 and tokens[index - 1] in _POSITION_WORDS
        listing = listing or after_word
        if position is None and token.isdigit() and len(token) <= 2:
            if listing or (not numbered and len(tokens) == 1):
                position = int(token)
        if position is None and after_word and token in _NUMBER_WORDS:  # "option one"
            position = _NUMBER_WORDS[token]
        if position is not None:
            position = count if position == -1 else position
            if not 1 <= position <= count:
                return (), []
            picked.append(position)
            used.append(index)
        elif token not in _ORDINAL_FILLER:
            return (), []
    ids = tuple(dict.fromkeys(question.options[position - 1].id for position in picked))
    return ids, used


def _count_ranges(question: Question) -> Optional[List[Tuple[str, Decimal, Optional[Decimal]]]]:
    """(option id, low, high) when every option's label is a number or range of things other than money
    ("2 to 4 people", "6 or more"): a question answered with a count. None otherwise."""
    if question.is_budget:
        return None
    ranges = []
    for option in question.options:
        if "$" in option.label or not re.search(r"\d", option.label):
            return None
        budget = parse_budget(option.label)
        if budget is None:
            return None
        if budget.low is not None:
            ranges.append((option.id, budget.low, budget.high))
        elif re.search(r"\b(up to|under|below|fewer|less|max)\b", option.label.lower()):
            ranges.append((option.id, Decimal(0), budget.high))
        else:  # "4": exactly four
            ranges.append((option.id, budget.high, budget.high))
    return ranges


def _count_option(question: Question, text: str) -> Optional[str]:
    """At a question answered with a count: the option whose range holds the number in the message ("usually
    six of us"), or the nearest (a tie goes to the larger: five people need a table for six)."""
    ranges = _count_ranges(question)
    if ranges is None:
        return None
    # "one" is mostly a pronoun ("the last one", "that one"): only digits and the other number words count
    numbers = re.findall(r"(?<![\d.])(\d{1,4})(?![\d.])", spelled_numbers(re.sub(r"(?i)\bone\b", " ", text)))
    if len(set(numbers)) != 1:
        return None
    wanted = Decimal(numbers[0])
    best: Optional[Tuple[Decimal, int, str]] = None
    for order, (option_id, low, high) in enumerate(ranges):
        if wanted < low:
            distance = low - wanted
        elif high is not None and wanted > high:
            distance = wanted - high
        else:
            return option_id
        candidate = (distance, -order, option_id)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def _budget_option(question: Question, budget: Budget) -> Optional[str]:
    """The option of a budget question whose price range best fits: for a ceiling X the tightest range
    that still reaches X; for a floor X ("over 500") the range starting closest below X."""
    infinity = float("inf")
    ranges = [(option.id, float(option.rules.min_price or 0),
               infinity if option.rules.max_price is None else float(option.rules.max_price))
              for option in question.options]
    if budget.high is not None:
        ceiling = float(budget.high)
        fits = [(high, low, option_id) for option_id, low, high in ranges if low < ceiling <= high]
        return min(fits)[2] if fits else None
    if budget.low is not None:
        floor = float(budget.low)
        fits = [(-low, high, option_id) for option_id, low, high in ranges if low <= floor < high]
        return min(fits)[2] if fits else None
    return None


def budget_in(text: str) -> Optional[Budget]:
    """The amount a message names, with numbers written as words ("under four hundred") read too."""
    spelled = spelled_numbers(text)
    return parse_budget(spelled) if re.search(r"\d", spelled) else None


def names_an_amount(text: str) -> bool:
    """Whether a message clearly talks money — "under 400 bucks", "$250", "400 max" — rather than merely
    holding a number ("2 people", "option 3")."""
    spelled = spelled_numbers(text).lower()
    if not re.search(r"\d", spelled):
        return False
    if "$" in spelled or re.search(r"\d\s*k\b", spelled):
        return True
    words = set(normalize(spelled).split())
    return bool(words & {"under", "below", "budget", "max", "maximum", "bucks", "dollars", "dollar", "usd", "spend",
                         "around", "about", "less", "cheaper", "upto", "most", "over", "above", "least"})


# ---------------------------------------------------------------------------------------------
# Matching


def match_options(question: Question, text: str) -> Tuple[str, ...]:
    """Every option a typed answer names ("oak and walnut, no leather"), in the question's order.
    At a single-choice question: the one option, or () when nothing or more than one matches."""
    normalized = normalize(text)
    if not normalized:
        return ()
    for phrase, option_id in question.match_keys:
        if phrase == normalized:
            return (option_id,)
    tokens = normalized.split()
    by_position, _ = _positions(question, tokens)
    if by_position:
        return by_position if question.multi or len(by_position) == 1 else ()
    if question.is_budget:
        budget = budget_in(text)
        option_id = _budget_option(question, budget) if budget else None
        if option_id is not None:
            return (option_id,)
    counted = _count_option(question, text)
    spans = _spans(question, tokens)
    exact = list(dict.fromkeys(span[2] for span in spans if span[3] >= STEMMED))
    close = list(dict.fromkeys(span[2] for span in spans))
    if counted is not None and not exact:
        return (counted,)
    order = {option.id: position for position, option in enumerate(question.options)}
    if question.multi:
        return tuple(sorted(close, key=order.__getitem__))
    for ids in (exact, close):
        if len(ids) == 1:
            return (ids[0],)
        if len(ids) > 1:
            return ()
    return ()


def ambiguous_options(question: Question, text: str) -> Tuple[str, ...]:
    """At a single-choice question, the options a message names when it names more than one ("both the
    living room and the dining room"): the shopper is asked which one. () otherwise."""
    if question.multi:
        return ()
    spans = _spans(question, normalize(text).split())
    exact = list(dict.fromkeys(span[2] for span in spans if span[3] >= STEMMED))
    named = exact if len(exact) > 1 else list(dict.fromkeys(span[2] for span in spans)) if not exact else []
    if len(named) < 2:
        return ()
    order = {option.id: position for position, option in enumerate(question.options)}
    return tuple(sorted(named, key=order.__getitem__))


def match_coverage(question: Question, text: str) -> float:
    """How much of a typed answer the question's options account for (0…1), filler words aside: "it's for
    the dining room" and "i stand most of the day" are all answer, "how many points do I have?" only brushes
    the option "many". An amount at a budget question, or a count at a question of counts, counts as a
    whole answer; so does a position ("the first one")."""
    normalized = normalize(text)
    tokens = normalized.split()
    if not tokens:
        return 0.0
    if _positions(question, tokens)[0]:
        return 1.0
    covered = {cell for start, end, _, _ in _spans(question, tokens) for cell in range(start, end)}
    amount = question.is_budget and budget_in(text) is not None
    counted = _count_option(question, text) is not None
    if amount or counted:
        # the number and the words around it ("under 300 dollars"), not the rest of the message
        covered |= {position for position, token in enumerate(tokens)
                    if any(character.isdigit() for character in token) or token in BUDGET_WORDS
                    or token in _SPELLED_SCALES or spelled_numbers(token) != token}
    meaningful = [position for position, token in enumerate(tokens) if token not in FILLER_WORDS]
    if not meaningful:
        return 1.0 if covered else 0.0
    return len(covered & set(meaningful)) / len(meaningful)


def match_option(question: Question, text: str) -> Optional[str]:
    """The option a typed answer picks — by id, label, synonym, a close spelling or another form of its
    words, a position, a count, or an amount at a budget question ("under 100", "$250", "100-300") — or None
    when it is unclear."""
    found = match_options(question, text)
    return found[0] if len(found) == 1 else None


def clear_options(question: Question, text: str, min_coverage: float = 0.5) -> Tuple[str, ...]:
    """The option(s) a message names beyond doubt — a phrase word for word (or another form of its words), a
    count, or an amount that talks money — and that account for at least half of what it says: how an answer
    to a question not yet asked is recognised ("under 400 bucks" while the materials are asked). No typo
    tolerance and no positions: those only make sense for the question on screen."""
    normalized = normalize(text)
    tokens = normalized.split()
    if not tokens or _positions(question, tokens)[0]:
        return ()  # "the last one" points at the buttons on screen, not at a question to come
    if question.is_budget:
        budget = budget_in(text) if names_an_amount(text) else None
        option_id = _budget_option(question, budget) if budget else None
        if option_id is not None:
            return (option_id,)
    spans = [span for span in _spans(question, tokens) if span[3] >= STEMMED]
    named = list(dict.fromkeys(span[2] for span in spans))
    if not named:
        counted = _count_option(question, text)
        named = [counted] if counted is not None else []
    if not named or (len(named) > 1 and not question.multi):
        return ()
    if match_coverage(question, text) < min_coverage:
        return ()
    order = {option.id: position for position, option in enumerate(question.options)}
    return tuple(sorted(named, key=order.__getitem__))


def leftover_text(question: Question, text: str) -> str:
    """The message without the words that answered this question ("dining room for six" → "for six"): what
    may answer the next one."""
    tokens = normalize(text).split()
    covered = {cell for start, end, _, _ in _spans(question, tokens) for cell in range(start, end)}
    return " ".join(token for position, token in enumerate(tokens) if position not in covered)
