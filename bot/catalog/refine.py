"""Refining the last search from what it showed: cheaper or pricier, bigger or smaller, other colours, one of
the products shown ("the second one"), or a corrected search ("no, I meant the lamp").

Pure logic over the catalog index (bot.catalog.search): no Rasa, no database. The search's own ranking and
relaxation do the work wherever a refinement is a search with other criteria.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from bot.catalog.search import (
    CatalogIndex, CatalogItem, ItemVariant, Match, Preferences, SearchCriteria, SearchResult, is_colour_option, search,
    variant_colour,
)

MAX_SHOWN = 3
_DIMENSIONS = re.compile(r"(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)")
_LENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(?:cm|mm|in|inch|inches)\b")
_NAMED_SIZES: Mapping[str, int] = {
    "xs": 1, "s": 2, "small": 2, "m": 3, "medium": 3, "l": 4, "large": 4, "xl": 5,
    "single": 1, "twin": 1, "double": 2, "full": 2, "queen": 3, "king": 4, "super king": 5,
}
_NUMBER_WORDS: Mapping[str, int] = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "eight": 8}
_SEATS = re.compile(r"^(?:seats-(\d+)|(\d+|one|two|three|four|five|six|eight)-seat(?:er)?)$")
SIZE_OPTIONS = frozenset({"size", "dimensions", "length", "width"})
SMALL_SPACE_TAG = "small-space"


@dataclass(frozen=True)
class Shown:
    """The last search: its criteria and the variants it showed, in order."""

    criteria: SearchCriteria
    skus: Tuple[str, ...]


def stored_criteria(stored: Optional[Mapping[str, Any]]) -> SearchCriteria:
    """SearchCriteria from ProductSearch.criteria (SearchCriteria.as_dict)."""
    stored = stored or {}

    def price(key: str) -> Optional[Decimal]:
        try:
            return Decimal(str(stored[key])) if stored.get(key) is not None else None
        except InvalidOperation:
            return None

    def text(key: str) -> Optional[str]:
        value = stored.get(key)
        return value if isinstance(value, str) and value else None

    return SearchCriteria(text("product_type"), text("colour"), text("material"), price("min_price"),
                          price("max_price"), tuple(stored.get("words") or ()), tuple(stored.get("excluded") or ()))


def size_of(item: CatalogItem, variant: ItemVariant) -> Optional[Tuple[str, Decimal]]:
    """(what is measured, how much): ("area", 11200) for "160 × 80 cm", ("named", 3) for Queen, ("seats", 3)
    for a 3-seat sofa. Only measures of the same kind compare."""
    for name, value in variant.options:
        if name.strip().lower() not in SIZE_OPTIONS:
            continue
        dimensions = _DIMENSIONS.search(value)
        if dimensions:
            return "area", Decimal(dimensions.group(1)) * Decimal(dimensions.group(2))
        length = _LENGTH.search(value)
        if length:
            return "length", Decimal(length.group(1))
        named = _NAMED_SIZES.get(value.strip().lower())
        if named is not None:
            return "named", Decimal(named)
    for tag in item.tags:
        seats = _SEATS.match(tag)
        if seats:
            count = seats.group(1) or seats.group(2)
            return "seats", Decimal(_NUMBER_WORDS.get(count, 0) or int(count))
    return None


def _size_label(item: CatalogItem, variant: ItemVariant) -> str:
    size = next((value for name, value in variant.options if name.strip().lower() in SIZE_OPTIONS), None)
    if size:
        return size
    measure = size_of(item, variant)
    return f"{measure[1]:f} seats" if measure is not None and measure[0] == "seats" else ""


def _match(item: CatalogItem, variant: ItemVariant, *why: str) -> Match:
    return Match(item, variant, 0, (), tuple(reason for reason in why if reason))


@dataclass(frozen=True)
class Refinement:
    """What a refinement found: `matches` to show (empty: nothing fits), the search behind them when it was
    one (its note says what was relaxed), and for "nothing cheaper" the shown product at the end of the range."""

    kind: str
    matches: Tuple[Match, ...]
    result: Optional[SearchResult] = None
    limit_reached: Optional[Match] = None  # nothing cheaper (or bigger...) than this, of what was shown
    measured: bool = True  # False: nothing tells the sizes apart (no size options, seats or small-space tags)
    widened_to: Optional[str] = None  # the matches leave out the colour and material asked, or are of this wider type


class Refiner:
    """Refinements of one shown search."""

    def __init__(self, index: CatalogIndex, shown: Shown, preferences: Optional[Preferences] = None) -> None:
        self.index, self.shown = index, shown
        self.preferences = preferences or Preferences()
        found = [index.variant(sku) for sku in shown.skus]
        self.products: List[Tuple[CatalogItem, ItemVariant]] = [pair for pair in found if pair is not None]

    @property
    def shown_items(self) -> frozenset:
        return frozenset(item.sku for item, _ in self.products)

    def product_type(self) -> Optional[str]:
        """What was searched for: the criteria's type, else the first shown product's most specific type."""
        if self.shown.criteria.product_type:
            return self.shown.criteria.product_type
        if not self.products:
            return None
        vocabulary = self.index.vocabulary
        types = sorted(vocabulary.item_types(self.products[0][0]) & vocabulary.type_tags,
                       key=lambda value: len(self.index.by_type.get(value, ())))
        return types[0] if types else None

    # -- price

    def cheaper(self) -> Refinement:
        return self._priced("cheaper", lambda price, limit: price < limit, min)

    def pricier(self) -> Refinement:
        return self._priced("pricier", lambda price, limit: price > limit, max)

    def _priced(self, kind: str, beyond: Callable[[Decimal, Decimal], bool], end: Callable) -> Refinement:
        if not self.products:
            return Refinement(kind, ())
        limit = end(variant.price for _, variant in self.products)
        product_type = self.shown.criteria.product_type or self.product_type()
        criteria = dataclasses.replace(self.shown.criteria, product_type=product_type)
        if kind == "cheaper":
            criteria = dataclasses.replace(criteria, max_price=limit, min_price=None)
        else:
            criteria = dataclasses.replace(criteria, min_price=limit, max_price=None)
        # The search shows the cheapest matches first, so a cheaper one of the same kind is rare: then the same
        # kind in any colour or material, then the wider kind ("cheaper lamps" than the cheapest floor lamp).
        wider = self.index.vocabulary.broader.get(product_type) if product_type else None
        tries: List[Tuple[SearchCriteria, Optional[str]]] = [(criteria, None)]
        if criteria.colour or criteria.material:
            tries.append((dataclasses.replace(criteria, colour=None, material=None), product_type))
        if wider:
            tries.append((dataclasses.replace(criteria, product_type=wider, colour=None, material=None), wider))
        for tried, widened_to in tries:
            result = search(tried, self.index, self.preferences, limit=10)
            kept = tuple(
                match for match in result.matches
                if beyond(match.price, limit) and match.item.sku not in self.shown_items
                and not {"product_type", "broader_type", "colour", "material"} & set(result.relaxed)
            )[:MAX_SHOWN]
            if kept:
                return Refinement(kind, kept, result, widened_to=widened_to)
        at_end = next(_match(item, variant) for item, variant in self.products if variant.price == limit)
        return Refinement(kind, (), None, at_end)

    # -- size

    def sized(self, bigger: bool) -> Refinement:
        kind = "bigger" if bigger else "smaller"
        if not self.products:
            return Refinement(kind, ())

        def beyond(measure: Decimal, than: Decimal) -> bool:
            return measure > than if bigger else measure < than

        # Another size of a product shown: the next one up (or down).
        found: List[Match] = []
        for item, variant in self.products:
            own = size_of(item, variant)
            if own is None:
                continue
            others = [(size_of(item, other), other) for other in item.variants if other.in_stock and other is not variant]
            others = [(measure, other) for measure, other in others
                      if measure is not None and measure[0] == own[0] and beyond(measure[1], own[1])]
            if others:
                measure, other = min(others, key=lambda pair: pair[0][1] if bigger else -pair[0][1])
                found.append(_match(item, other, _size_label(item, other)))
        if found:
            return Refinement(kind, tuple(found[:MAX_SHOWN]))
        # Other products of the type, measured the same way.
        measures = [size_of(item, variant) for item, variant in self.products]
        known = [measure for measure in measures if measure is not None]
        candidates = self._others_of_type()
        if known:
            unit = known[0][0]
            edge = (max if bigger else min)(measure[1] for measure in known if measure[0] == unit)
            sized = []
            for item in candidates:
                for variant in item.variants:
                    measure = size_of(item, variant)
                    if variant.in_stock and measure is not None and measure[0] == unit and beyond(measure[1], edge):
                        sized.append((measure[1], _match(item, variant, _size_label(item, variant))))
                        break
            sized.sort(key=lambda pair: pair[0] if bigger else -pair[0])
            if sized:
                return Refinement(kind, tuple(match for _, match in sized[:MAX_SHOWN]))
            at_end = max(((measure[1] if bigger else -measure[1], _match(item, variant))
                          for (item, variant), measure in zip(self.products, measures)
                          if measure is not None and measure[0] == unit), key=lambda pair: pair[0])[1]
            return Refinement(kind, (), limit_reached=at_end)
        # Products made for small rooms are the smaller ones.
        small = [SMALL_SPACE_TAG in item.tags for item, _ in self.products]
        if bigger and all(small):
            others = [item for item in candidates if SMALL_SPACE_TAG not in item.tags]
        elif not bigger and not all(small):
            others = [item for item in candidates if SMALL_SPACE_TAG in item.tags]
        else:
            others = []
        matches = tuple(_match(item, self._cheapest(item), "made for small spaces" if not bigger else "")
                        for item in others[:MAX_SHOWN])
        return Refinement(kind, matches, measured=any(small) or bool(matches))

    # -- colour

    def colours(self) -> Refinement:
        """The other colours of the products shown; else other products of the type in other colours."""
        found: List[Match] = []
        for item, variant in self.products:
            colour = variant_colour(variant)
            if colour is None:
                continue
            rest = {name: value for name, value in variant.options if not is_colour_option(name, value)}  # the size
            for other in item.variants:
                other_colour = variant_colour(other)
                same_rest = all(dict(other.options).get(name) == value for name, value in rest.items())
                if other.in_stock and other_colour and other_colour != colour and same_rest:
                    found.append(_match(item, other, f"also in {other_colour.lower()}"))
        if found:
            return Refinement("colours", tuple(found[:MAX_SHOWN * 2]))
        criteria = dataclasses.replace(self.shown.criteria, colour=None,
                                       product_type=self.shown.criteria.product_type or self.product_type())
        result = search(criteria, self.index, self.preferences, limit=10)
        kept = tuple(match for match in result.matches if match.item.sku not in self.shown_items)[:MAX_SHOWN]
        return Refinement("colours", kept, result if kept else None)

    # -- one of those shown, or a correction

    def pick(self, position: int) -> Optional[Match]:
        """The product shown at `position` (0-based; -1 the last), or None."""
        if not self.products or position >= len(self.products) or position < -len(self.products):
            return None
        item, variant = self.products[position]
        return _match(item, variant)

    def shown_of_type(self, product_type: str) -> Optional[Match]:
        """The one product shown of a type ("no, I meant the lamp" when a lamp was among them)."""
        vocabulary = self.index.vocabulary
        found = [(item, variant) for item, variant in self.products if product_type in vocabulary.item_types(item)]
        return _match(*found[0]) if len(found) == 1 else None

    def corrected(self, said: SearchCriteria) -> SearchCriteria:
        """The last search with what the correction names instead: a new product type keeps only the price
        ("no, I meant the lamp"), a colour, material or price replaces its own ("no, in oak")."""
        before = self.shown.criteria
        price = (said.min_price, said.max_price) if said.has_price else (before.min_price, before.max_price)
        if said.product_type:
            return SearchCriteria(said.product_type, said.colour, said.material, *price, said.words, said.excluded)
        return SearchCriteria(before.product_type, said.colour or before.colour, said.material or before.material,
                              *price, before.words, tuple(dict.fromkeys(before.excluded + said.excluded)))

    # -- helpers

    def _others_of_type(self) -> List[CatalogItem]:
        product_type = self.product_type()
        if product_type is None:
            return []
        return [item for item in self.index.items_of_type(product_type) if item.sku not in self.shown_items]

    @staticmethod
    def _cheapest(item: CatalogItem) -> ItemVariant:
        return min((variant for variant in item.variants if variant.in_stock), key=lambda variant: variant.price)


def positions_named(words: Sequence[str]) -> Optional[int]:
    """Which of the products shown a message points at: "the second one" → 1, "the last" → -1, "#3" → 2."""
    ordinals = {"first": 0, "top": 0, "one": 0, "1": 0, "second": 1, "two": 1, "2": 1, "middle": 1, "third": 2,
                "three": 2, "3": 2, "last": -1, "bottom": -1}
    for position, word in enumerate(words):
        word = word.lstrip("#")
        if word in ("first", "second", "third", "last", "middle", "top", "bottom"):
            return ordinals[word]
        if word in ("1", "2", "3") or (word in ("one", "two", "three") and position > 0
                                         and words[position - 1] in ("number", "no", "option", "#")):
            return ordinals[word]
    return None
