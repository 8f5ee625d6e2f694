"""Catalog search: "do you have standing desks under $400 in oak?" → ranked products, or the closest ones.
Pure logic over CatalogItems (no Rasa, no database): a vocabulary learned from the catalog reads the message
(`criteria_from`), a CatalogIndex built once per catalog snapshot answers `search`. How it reads, matches,
ranks and relaxes: the README's "How catalog search works"."""
from __future__ import annotations

import bisect
import difflib
import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import (
    Any, Container, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union,
)

from bot.shared.amounts import BUDGET_STRETCH, parse_budget
from bot.shared.text import FUZZY_CUTOFF, FUZZY_MIN_CHARS, normalize, plural, singular

TYPE, COLOUR, MATERIAL = "product_type", "colour", "material"
KINDS = (TYPE, COLOUR, MATERIAL)

# The built-in table of colour and material words: how a tag is told apart from a product type. Words no
# product carries ("purple") are still recognised in messages, so the reply can say there is nothing in it.
COLOUR_WORDS: FrozenSet[str] = frozenset("""
    black white grey green natural brown gold silver cream beige ivory tan blue navy indigo red rust orange
    yellow mustard pink blush purple lilac sage moss olive clay terracotta charcoal graphite slate sand
    oatmeal teal turquoise ochre burgundy multicolour
""".split())
MATERIAL_WORDS: FrozenSet[str] = frozenset("""
    oak walnut ash pine beech birch teak acacia bamboo rattan cane wicker mango elm cherry maple wood
    linen cotton wool velvet leather fabric boucle jute felt mesh brass steel iron copper aluminium metal
    chrome ceramic stoneware porcelain glass marble stone concrete terrazzo paper plastic
""".split())
# A family name finds its members ("green" → a sage sofa); members also match themselves.
COLOUR_FAMILIES: Mapping[str, FrozenSet[str]] = {
    "grey": frozenset({"charcoal", "graphite", "slate"}),
    "green": frozenset({"sage", "moss", "olive"}),
    "blue": frozenset({"indigo", "navy", "teal"}),
    "beige": frozenset({"sand", "oatmeal", "cream", "natural"}),
    "white": frozenset({"ivory", "cream"}),
    "red": frozenset({"rust", "terracotta", "burgundy"}),
    "brown": frozenset({"tan"}),
    "yellow": frozenset({"mustard", "ochre"}),
}
MATERIAL_GROUPS: Mapping[str, FrozenSet[str]] = {
    "wood": frozenset({"oak", "walnut", "ash", "pine", "beech", "birch", "teak", "acacia", "bamboo", "mango", "elm",
                       "cherry", "maple"}),
    "metal": frozenset({"steel", "brass", "iron", "copper", "aluminium", "chrome"}),
    "fabric": frozenset({"linen", "cotton", "wool", "velvet", "boucle", "felt", "jute"}),
}
# Tags that describe a use or a feature, not a thing: never product types, only free words for the ranking.
USE_WORDS: FrozenSet[str] = frozenset("""
    small-space ergonomic kids-safe outdoor indoor family lounge stackable standing electric office
    home-office floor dimmable modular dining foldable swivel portable rechargeable ceiling dishwasher-safe
    wall handmade vintage sale new bestseller featured gift eco sustainable adjustable
""".split())
_USE_PATTERN = re.compile(r"\d|-safe$|-seats?$|-seater$|-friendly$|-proof$")
# Option names whose values are colours (or, for Finish and Material, materials when the value is one).
COLOUR_OPTIONS = frozenset({"colour", "color", "glaze", "shade", "finish"})
MATERIAL_OPTIONS = frozenset({"material", "finish", "wood", "fabric"})
# One spelling for words shoppers (and catalogs) write two ways.
SPELLINGS: Mapping[str, str] = {
    "gray": "grey", "color": "colour", "colors": "colours", "golden": "gold", "wooden": "wood",
    "timber": "wood", "metallic": "metal", "aluminum": "aluminium", "multicolor": "multicolour",
}
# Synonym → the types it may mean, the first the catalog has wins.
TYPE_SYNONYMS: Mapping[str, Tuple[str, ...]] = {
    "couch": ("sofa",), "settee": ("sofa",), "love seat": ("loveseat", "sofa"), "sofa": ("sofa", "couch"),
    "sit stand desk": ("standing-desk",), "sit stand": ("standing-desk",), "stand up desk": ("standing-desk",),
    "height adjustable desk": ("standing-desk",), "standing desk": ("standing-desk",),
    "light": ("lamp",), "lighting": ("lamp",), "lamp": ("lamp", "light"), "reading lamp": ("floor-lamp", "lamp"),
    "pendant light": ("pendant", "lamp"), "pendant lamp": ("pendant", "lamp"),
    "bookcase": ("shelving", "storage"), "bookshelf": ("shelving", "storage"), "shelf": ("shelving", "storage"),
    "shelving unit": ("shelving", "storage"), "shelving": ("shelving", "storage"),
    "chest of drawer": ("dresser", "storage"), "drawer": ("dresser", "storage"), "dresser": ("dresser", "storage"),
    "cupboard": ("cabinet", "storage"), "credenza": ("sideboard", "storage"), "buffet": ("sideboard", "storage"),
    "nightstand": ("bedside-table",), "night stand": ("bedside-table",), "bedside": ("bedside-table",),
    "end table": ("side-table", "table"), "kitchen table": ("dining-table", "table"),
    "armchair": ("chair",), "desk chair": ("office-chair", "chair"), "carpet": ("rug",),
    "duvet": ("duvet-cover", "bedding"), "sheet": ("bedding",), "pillow": ("cushion",),
    "plate": ("dinnerware", "tableware"), "dish": ("dinnerware", "tableware"), "dinner set": ("dinnerware",),
    "bed frame": ("bed",), "throw pillow": ("cushion",), "scatter cushion": ("cushion",),
}
# Words that carry no search meaning: neither fuzzy-matched nor counted as free words.
STOPWORDS: FrozenSet[str] = frozenset("""
    a an the and or of for in on at to with by from into as do does did you your we our us i me my mine
    have has had got get any some something anything show find looking look search want need would like
    love please hi hello hey can could there is are be it its this that these those one ones which what
    whats where how much many cheap cheaper cheapest affordable under over below above less more than
    between up max maximum min minimum least most around about budget price priced cost costs costing
    dollar bucks usd k colour colours material materials made kind type sort style in stock available item
    product piece thing buy sell selling also too just only really very not no without non except free
    other another else same still right now shop store cm mm x inch inches
""".split())
NEGATIONS = frozenset({"no", "not", "without", "non", "except", "hate", "avoid"})
MAX_PHRASE_WORDS = 4
MAX_WHY = 4

# Criteria bits of one variant.
_T, _C, _M, _P = 1, 2, 4, 8
_P_WIDE, _T_BROAD = 16, 32  # price within the stretched range; the broader type
_STRICT = _T | _C | _M | _P
# (relaxed name, rank) in the order they are tried when one relaxation is enough.
RELAXATION_ORDER = ("price_stretched", "colour", "material", "price", "broader_type", "product_type")


# ---------------------------------------------------------------------------------------------
# Words


@functools.lru_cache(maxsize=65536)
def _word(word: str) -> str:
    word = SPELLINGS.get(word, word)
    return SPELLINGS.get(singular(word), singular(word))


@functools.lru_cache(maxsize=65536)
def _key(phrase: str) -> str:
    """How phrases are compared: normalized, one spelling, singular words ("Standing-Desks" → "standing desk")."""
    return " ".join(_word(word) for word in normalize(phrase.replace("-", " ")).split())


@functools.lru_cache(maxsize=65536)
def _value(text: str) -> str:
    """A tag, option value or collection as stored: lower case, one spelling, hyphens kept ("Gray" → "grey",
    "Natural Oak" → "natural oak", "standing-desk")."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[a-z]+", lambda word: SPELLINGS.get(word[0], word[0]), " ".join(text.split()))


def _label(value: str) -> str:
    return value.replace("-", " ")


def money(amount: Decimal) -> str:
    """$400, $1,290, $389.50."""
    return f"${amount:,.0f}" if amount == amount.to_integral_value() else f"${amount:,.2f}"


def price_phrase(min_price: Optional[Decimal], max_price: Optional[Decimal]) -> Optional[str]:
    """ "under $400", "over $500", "between $100 and $300"."""
    if min_price is not None and max_price is not None:
        return f"between {money(min_price)} and {money(max_price)}"
    if max_price is not None:
        return f"under {money(max_price)}"
    if min_price is not None:
        return f"over {money(min_price)}"
    return None


# ---------------------------------------------------------------------------------------------
# Items


@dataclass(frozen=True)
class ItemVariant:
    sku: str
    title: str  # "Oak", "120 × 70 cm", "Default"
    options: Tuple[Tuple[str, str], ...]  # (("Finish", "Oak"),) — a tuple so the item stays hashable
    price: Decimal
    in_stock: bool = True

    @property
    def options_map(self) -> Dict[str, str]:
        return dict(self.options)


@dataclass(frozen=True)
class CatalogItem:
    """What search needs of a product."""

    sku: str
    title: str
    description: str
    url: str
    image_url: Optional[str]
    tags: FrozenSet[str]
    collection: Optional[str]
    variants: Tuple[ItemVariant, ...]

    @property
    def in_stock(self) -> bool:
        return any(variant.in_stock for variant in self.variants)

    @property
    def price(self) -> Optional[Decimal]:
        """The lowest in-stock price (None when nothing is in stock)."""
        return min((variant.price for variant in self.variants if variant.in_stock), default=None)

    @classmethod
    def from_product(cls, product: Any) -> "CatalogItem":
        """From bot.models.catalog.Product with its .variants (a product without variants rows becomes one
        variant with the product's own SKU, price and stock)."""
        variants = tuple(
            ItemVariant(variant.sku, variant.title or "Default", _options(variant.options), Decimal(variant.price),
                        bool(variant.in_stock))
            for variant in sorted(product.variants or (), key=lambda variant: variant.position or 0)
        ) or (ItemVariant(product.sku, "Default", (), Decimal(product.price), bool(product.in_stock)),)
        return cls(product.sku, product.title, product.description or "", product.url, product.image_url,
                   frozenset(_value(tag) for tag in product.tags or () if _value(tag)), product.collection, variants)

    @classmethod
    def from_input(cls, product: Any, store_url: str = "") -> "CatalogItem":
        """From bot.catalog.ProductInput (a catalog file read by bot.catalog.loader), for tests and tools."""
        variants = tuple(
            ItemVariant(variant.sku, variant.title, _options(variant.options), variant.price, variant.in_stock)
            for variant in sorted(product.variants, key=lambda variant: variant.position)
        )
        image = product.image_url
        if image and image.startswith("/") and store_url:
            image = store_url.rstrip("/") + image
        url = f"{store_url.rstrip('/')}/products/{product.handle}"
        return cls(product.sku, product.title, product.description, url, image,
                   frozenset(_value(tag) for tag in product.tags if _value(tag)), product.collection, variants)


def _options(options: Optional[Mapping[str, Any]]) -> Tuple[Tuple[str, str], ...]:
    return tuple((str(name), str(value)) for name, value in (options or {}).items())


def is_colour_option(name: str, value: str) -> bool:
    """Whether a variant option ("Colour": "Sage", "Glaze": "Moss") gives the variant its colour."""
    return _option_kind(name, _value(value)) == COLOUR


def variant_colour(variant: ItemVariant) -> Optional[str]:
    """The colour a variant's options give it ("Sage"), if any."""
    return next((value for name, value in variant.options if is_colour_option(name, value)), None)


def _option_kind(name: str, value: str) -> Optional[str]:
    """Colour, material or neither (Size) for one variant option."""
    name, words = name.strip().lower(), value.split()
    is_material = value in MATERIAL_WORDS or (bool(words) and words[-1] in MATERIAL_WORDS)
    if name in MATERIAL_OPTIONS and (is_material or name != "finish"):
        return MATERIAL
    if name in COLOUR_OPTIONS:
        return MATERIAL if is_material else COLOUR
    return None


# ---------------------------------------------------------------------------------------------
# Vocabulary


@dataclass(frozen=True)
class Span:
    """A phrase of a message that names a type, colour or material."""

    start: int
    end: int
    kind: str
    value: str
    known: bool  # the catalog has it (False: a built-in colour or material no product carries)
    negated: bool = False  # "no leather"
    exact: bool = True  # False: a typo of it


@dataclass(frozen=True, eq=False)
class SearchVocabulary:
    """What the catalog lets shoppers name. Build it with SearchVocabulary.of(items)."""

    types: FrozenSet[str]  # type tags, heads of hyphenated types, collections (normalized)
    type_tags: FrozenSet[str]  # the tags among them
    colours: FrozenSet[str]  # including family names with a member in the catalog ("green")
    materials: FrozenSet[str]  # including group names with a member ("wood")
    collections: FrozenSet[str]
    broader: Mapping[str, str]  # type → the smallest type that contains all its items ("bunk-bed" → "bed")
    phrases: Mapping[str, Tuple[str, str]] = field(repr=False)  # _key(phrase) → (kind, value)
    tag_kinds: Mapping[str, str] = field(repr=False)  # tag → type/colour/material/use
    value_kinds: Mapping[str, str] = field(repr=False)  # colour/material option values → kind
    words: FrozenSet[str] = field(repr=False, default=frozenset())  # every word of titles, tags, collections

    @classmethod
    def of(cls, items: Iterable[CatalogItem]) -> "SearchVocabulary":
        items = list(items)
        value_kinds: Dict[str, str] = {}
        for item in items:
            for variant in item.variants:
                for name, raw in variant.options:
                    value = _value(raw)
                    kind = _option_kind(name, value)
                    if kind and value:
                        value_kinds.setdefault(value, kind)
        tag_kinds: Dict[str, str] = {}
        for item in items:
            for tag in item.tags:
                tag_kinds.setdefault(tag, _tag_kind(tag, value_kinds))
        type_tags = {tag for tag, kind in tag_kinds.items() if kind == TYPE}
        heads = {_head(tag, type_tags) for tag in type_tags if "-" in tag}
        collections = {_value(item.collection) for item in items if item.collection and _value(item.collection)}
        types = type_tags | heads | collections
        kinds = list(itertools.chain(tag_kinds.items(), value_kinds.items()))
        colours = {value for value, kind in kinds if kind == COLOUR}
        materials = {value for value, kind in kinds if kind == MATERIAL}
        # Parts of multi-word values ("dark oak" → oak) are known too, and the families of all.
        materials |= {word for value in materials for word in value.split() if word in MATERIAL_WORDS}
        colours |= {word for value in colours for word in value.split() if word in COLOUR_WORDS}
        colours |= {name for name, members in COLOUR_FAMILIES.items() if members & colours}
        materials |= {name for name, members in MATERIAL_GROUPS.items() if members & materials}

        phrases: Dict[str, Tuple[str, str]] = {}

        def add(phrase: str, kind: str, value: str) -> None:
            key = _key(phrase)
            if key and key not in STOPWORDS:
                phrases.setdefault(key, (kind, value))

        # Precedence: the catalog's own types, colours and materials; synonyms; collections; built-in words.
        for value in sorted(type_tags | heads):
            add(value, TYPE, value)
        for value in sorted(colours):
            add(value, COLOUR, value)
        for value in sorted(materials):
            add(value, MATERIAL, value)
        for phrase, targets in TYPE_SYNONYMS.items():
            target = next((target for target in targets if target in types), None)
            if target is not None:
                add(phrase, TYPE, target)
        for value in sorted(collections):
            add(value, TYPE, value)
        for value in sorted(COLOUR_WORDS | set(COLOUR_FAMILIES)):
            add(value, COLOUR, value)
        for value in sorted(MATERIAL_WORDS | set(MATERIAL_GROUPS)):
            add(value, MATERIAL, value)

        words = {word for item in items for text in itertools.chain((item.title, item.collection or ""), item.tags)
                 for word in _key(text).split()}
        vocabulary = cls(frozenset(types), frozenset(type_tags), frozenset(colours), frozenset(materials),
                         frozenset(collections), {}, phrases, tag_kinds, value_kinds, frozenset(words))
        # Broader types: among the types carried by every item of a type, the smallest strictly larger one.
        members: Dict[str, Set[int]] = {}
        for position, item in enumerate(items):
            for value in vocabulary.item_types(item):
                members.setdefault(value, set()).add(position)
        broader: Dict[str, str] = {}
        for value, rows in members.items():
            wider = [(len(other_rows), other) for other, other_rows in members.items()
                     if other != value and other in type_tags and len(other_rows) > len(rows) and rows <= other_rows]
            if wider:
                broader[value] = min(wider)[1]
        object.__setattr__(vocabulary, "broader", broader)
        return vocabulary

    def kind_of(self, tag: str) -> str:
        """type, colour, material or use."""
        kind = self.tag_kinds.get(tag)
        return kind if kind is not None else _tag_kind(tag, self.value_kinds)

    def knows(self, kind: str, value: Optional[str]) -> bool:
        """Whether the catalog has this type, colour or material."""
        if value is None:
            return False
        return value in {TYPE: self.types, COLOUR: self.colours, MATERIAL: self.materials}[kind]

    def item_types(self, item: CatalogItem) -> FrozenSet[str]:
        """The types an item is of: its type tags (minus those only used as the first half of another type
        tag), the heads of its hyphenated types, its collection, and its title's last word when that is a type."""
        tags = {tag for tag in item.tags if self.kind_of(tag) == TYPE}
        # "table" beside "table-lamp" says what kind of lamp, when "lamp" is a type of its own.
        modifiers = {tag.rsplit("-", 1)[0] for tag in tags
                     if "-" in tag and _head(tag, self.types) in self.type_tags}
        result = tags - modifiers
        result |= {_head(tag, self.types) for tag in tags if "-" in tag}
        if item.collection:
            result.add(_value(item.collection))
        title = re.sub(r"\([^)]*\)", " ", item.title)  # "Ash dining chair (set of 2)" → "Ash dining chair"
        words = _key(title).split()
        if words:
            head = self.phrases.get(words[-1])
            if head is not None and head[0] == TYPE:
                result.add(head[1])
        return frozenset(result)

    # -- reading messages ------------------------------------------------------------------------

    def find(self, text: str) -> List[Span]:
        """The types, colours and materials a message names, in order. Longest phrases first; a close
        spelling (difflib, like the quiz engine) counts for a word that is neither a phrase, a stop word nor
        a word of the catalog ("harbour" is a name, not a typo): "standng desk" → standing-desk."""
        tokens = normalize(text.replace("/", " ")).split()
        keys = [_word(token) for token in tokens]
        spans: List[Span] = []
        covered = [False] * len(tokens)
        single, double = self._fuzzy_keys

        def typo(word: str) -> bool:
            return (word.isalpha() and len(word) >= FUZZY_MIN_CHARS and word not in STOPWORDS
                    and word not in self.words and word not in self.phrases)

        def exact(size: int) -> None:
            for start in range(len(keys) - size + 1):
                if not any(covered[start:start + size]):
                    meaning = self.phrases.get(" ".join(keys[start:start + size]))
                    if meaning is not None:
                        spans.append(self._span(start, start + size, meaning, keys, True))
                        covered[start:start + size] = [True] * size

        def close(size: int, choices: List[str]) -> None:
            for start in range(len(keys) - size + 1):
                words = keys[start:start + size]
                if any(covered[start:start + size]) or not any(typo(word) for word in words) or any(
                        word in STOPWORDS or not word.isalpha() for word in words):
                    continue
                found = difflib.get_close_matches(" ".join(words), choices, n=1, cutoff=FUZZY_CUTOFF)
                if found:
                    spans.append(self._span(start, start + size, self.phrases[found[0]], keys, False))
                    covered[start:start + size] = [True] * size

        for size in range(min(MAX_PHRASE_WORDS, len(keys)), 1, -1):
            exact(size)
        close(2, double)
        exact(1)
        close(1, single)
        spans.sort(key=lambda span: span.start)
        return spans

    @functools.cached_property
    def _fuzzy_keys(self) -> Tuple[List[str], List[str]]:
        """The one-word and two-word phrases a typo may stand for."""
        return ([key for key in self.phrases if " " not in key and len(key) >= FUZZY_MIN_CHARS],
                [key for key in self.phrases if key.count(" ") == 1])

    def _span(self, start: int, end: int, meaning: Tuple[str, str], keys: List[str], exact: bool) -> Span:
        kind, value = meaning
        before = keys[max(0, start - 2):start]
        # "no leather", "not velvet", "without any leather", "leather free"
        negated = bool(before) and (before[-1] in NEGATIONS or (len(before) == 2 and before[0] in NEGATIONS
                                                                and before[1] in {"any", "a", "real"}))
        negated = negated or (end < len(keys) and keys[end] == "free")
        return Span(start, end, kind, value, self.knows(kind, value), negated, exact)

    def lookup(self, phrase: str, kind: Optional[str] = None) -> Optional[Tuple[str, str]]:
        """(kind, value) of what a phrase names — of `kind` when it names several things — or None."""
        spans = [span for span in self.find(phrase) if not span.negated]
        if kind is not None:
            spans.sort(key=lambda span: span.kind != kind)
        return (spans[0].kind, spans[0].value) if spans else None


def _tag_kind(tag: str, value_kinds: Mapping[str, str]) -> str:
    if tag in value_kinds:
        return value_kinds[tag]
    if tag in COLOUR_WORDS or tag in COLOUR_FAMILIES:
        return COLOUR
    if tag in MATERIAL_WORDS or tag in MATERIAL_GROUPS:
        return MATERIAL
    if tag in USE_WORDS or _USE_PATTERN.search(tag):
        return "use"
    return TYPE


def _head(tag: str, types: Container[str]) -> str:
    """The thing a hyphenated type names: "floor-lamp" → "lamp", "wall-light" → "lamp" (a synonym)."""
    head = tag.rsplit("-", 1)[-1]
    for target in TYPE_SYNONYMS.get(head, ()):
        if target in types:
            return target
    return head


# ---------------------------------------------------------------------------------------------
# Criteria


@dataclass(frozen=True)
class SearchCriteria:
    product_type: Optional[str] = None  # a type of the vocabulary ("standing-desk"), or what was said ("spaceship")
    colour: Optional[str] = None
    material: Optional[str] = None
    min_price: Optional[Decimal] = None
    max_price: Optional[Decimal] = None
    words: Tuple[str, ...] = ()  # the other words of the message ("harbour", "small", "space")
    excluded: Tuple[str, ...] = ()  # what the message rules out ("no leather")

    @property
    def has_price(self) -> bool:
        return self.min_price is not None or self.max_price is not None

    @property
    def price_phrase(self) -> Optional[str]:
        return price_phrase(self.min_price, self.max_price)

    def as_dict(self) -> Dict[str, Any]:
        """For ProductSearch.criteria (JSON): prices as strings."""
        return {
            "product_type": self.product_type, "colour": self.colour, "material": self.material,
            "min_price": None if self.min_price is None else str(self.min_price),
            "max_price": None if self.max_price is None else str(self.max_price),
            "words": list(self.words), "excluded": list(self.excluded),
        }


_QUANTITY = re.compile(
    r"\d+(?:\.\d+)?\s*[x×]\s*\d+(?:\.\d+)?"  # 120 × 70
    r"|\d+(?:\.\d+)?\s*-?\s*(?:cm|mm|inch|inches|ft|feet|seat|seats|seater|seaters|people|persons|person|guests"
    r"|pieces|piece|pcs|drawers|drawer|doors|door|shelves|kids|children|year|years)\b"
    r"|\b(?:seats|set of|pack of)\s+\d+",
)
_PRICE_HINT = re.compile(
    r"[$€£]|\d\s*k\b|\d\s*\+|\d\s*(?:-|–|to)\s*\$?\d|\b(?:under|below|less than|up to|upto|max|maximum|at most"
    r"|no more than|cheaper than|within|over|above|more than|at least|min|minimum|from|starting at|between"
    r"|budget|price|priced|cost|costs|costing|spend|around|about|dollars?|bucks|usd|and up|or more|plus)\b",
)
_MIN_BARE_PRICE = Decimal(20)  # a bare number below this is a count ("2 chairs"), not a price


def _amount(value: Decimal) -> Decimal:
    """400 or 389.50, whatever the parser's exponent ("1.5k" → 1500, not 1500.0)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.quantize(Decimal("0.01"))


def _price_from(text: str) -> Optional[Tuple[Optional[Decimal], Optional[Decimal]]]:
    """(min, max) from a message with a number, via the quiz engine's parse_budget; sizes and counts
    ("120 × 70 cm", "3-seat", "set of 2") are not prices."""
    if not re.search(r"\d", text):
        return None
    cleaned = _QUANTITY.sub(" ", text.lower())
    if not re.search(r"\d", cleaned):
        return None
    budget = parse_budget(cleaned)
    if budget is None:
        return None
    low = _amount(budget.low) if budget.low else None
    high = None if budget.high is None else _amount(budget.high)
    if not _PRICE_HINT.search(cleaned) and (high is None or high < _MIN_BARE_PRICE) and low is None:
        return None
    return low, high


def _entity_values(raw: Any) -> List[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw.strip() else []
    if isinstance(raw, Mapping):  # a Rasa entity dict
        return _entity_values(raw.get("value"))
    if isinstance(raw, Iterable):
        return [value for item in raw for value in _entity_values(item)]
    return [str(raw)]


ENTITY_KEYS: Mapping[str, Tuple[str, ...]] = {
    TYPE: ("product_type", "type"), COLOUR: ("colour", "color"), MATERIAL: ("material",),
}


def criteria_from(text: str, entities: Optional[Mapping[str, Any]], vocabulary: SearchVocabulary) -> SearchCriteria:
    """What a message asks for. Entity values (Rasa's product_type, colour/color, material, price_range —
    any may be missing, a list, or wrong) are read through the vocabulary: a value naming another kind goes
    there ("oak" as product_type is a material). What the entities do not give is looked for in the text.
    A value the catalog has beats one it lacks; one it lacks is kept ("purple") so the reply can say so."""
    entities = entities or {}
    found: Dict[str, Tuple[str, bool]] = {}  # kind → (value, known)
    unknown_entity: Dict[str, str] = {}

    def offer(kind: str, value: str, known: bool) -> None:
        current = found.get(kind)
        if current is None or (known and not current[1]):
            found[kind] = (value, known)

    for kind, keys in ENTITY_KEYS.items():
        for key in keys:
            for raw in _entity_values(entities.get(key)):
                all_spans = vocabulary.find(raw)
                spans = sorted((span for span in all_spans if not span.negated),
                               key=lambda span: (not span.known, span.kind != kind))
                if spans:
                    offer(spans[0].kind, spans[0].value, spans[0].known)
                    continue
                said = " ".join(word for word in _key(raw).split() if word not in STOPWORDS and word not in NEGATIONS)
                if said and not all_spans:  # "no leather" is the text's to read
                    unknown_entity.setdefault(kind, said)

    spans = vocabulary.find(text)
    tokens = normalize(text.replace("/", " ")).split()
    covered: Set[int] = set()
    excluded: List[str] = []
    extra: List[str] = []  # a second type ("dining" beside "chairs") only helps the ranking
    for span in spans:
        covered.update(range(span.start, span.end))
        if span.negated:
            excluded.append(span.value)
            continue
        current = found.get(span.kind)
        if current is None:
            found[span.kind] = (span.value, span.known)
        elif span.known and not current[1]:
            found[span.kind] = (span.value, span.known)
        elif span.kind == TYPE and current[0] in vocabulary.collections and span.value not in vocabulary.collections:
            extra.append(current[0])  # a type beats a collection: "dining chairs" → chair, dining
            found[span.kind] = (span.value, span.known)
        elif span.value != current[0]:
            extra.append(span.value)
    for kind, value in unknown_entity.items():
        if kind not in found:
            found[kind] = (value, False)

    low = high = None
    for raw in _entity_values(entities.get("price_range")) + [text]:
        price = _price_from(raw)
        if price is not None:
            low, high = price
            break
    if low is not None and high is not None and low > high:
        low, high = high, low

    words: List[str] = []
    for position, token in enumerate(tokens):
        word = _word(token)
        if position in covered or word in STOPWORDS or word in NEGATIONS or not word.isalpha() or len(word) < 2:
            continue
        words.append(word)
    for value in extra:
        words.extend(_key(value).split())
    return SearchCriteria(
        product_type=found.get(TYPE, (None, False))[0], colour=found.get(COLOUR, (None, False))[0],
        material=found.get(MATERIAL, (None, False))[0], min_price=low, max_price=high,
        words=tuple(dict.fromkeys(words)), excluded=tuple(dict.fromkeys(excluded)),
    )


# ---------------------------------------------------------------------------------------------
# Index


@dataclass(frozen=True)
class _Variant:
    variant: ItemVariant
    position: int
    colours: Mapping[str, str]  # what a shopper may ask ("green") → the variant's colour ("sage")
    materials: Mapping[str, str]
    attributes: FrozenSet[str]  # tags and option values, for liked and excluded tags


@dataclass(frozen=True)
class _Entry:
    item: CatalogItem
    types: FrozenSet[str]
    words: FrozenSet[str]
    variants: Tuple[_Variant, ...]  # in stock only
    min_price: Decimal  # of the in-stock variants
    max_price: Decimal


def _families_of(families: Mapping[str, FrozenSet[str]]) -> Dict[str, Tuple[str, ...]]:
    result: Dict[str, List[str]] = {}
    for name, members in families.items():
        for member in members:
            result.setdefault(member, []).append(name)
    return {member: tuple(sorted(names)) for member, names in result.items()}


_COLOUR_FAMILY_OF = _families_of(COLOUR_FAMILIES)
_MATERIAL_GROUP_OF = _families_of(MATERIAL_GROUPS)


def _with_family(values: Sequence[str], family_of: Mapping[str, Tuple[str, ...]],
                 known: FrozenSet[str]) -> Dict[str, str]:
    """What a shopper may ask → the value that answers it: {"sage": "sage", "green": "sage"}."""
    result: Dict[str, str] = {}
    for value in values:
        result.setdefault(value, value)
        if " " in value:
            for word in value.split():
                if word in known:
                    result.setdefault(word, value)  # "dark oak" is oak
    for value in values:
        for word in value.split() if " " in value else (value,):
            for name in family_of.get(word, ()):
                result.setdefault(name, value)
    return result


class CatalogIndex:
    """The catalog ready for searching: build it once per catalog snapshot and pass it to search()."""

    def __init__(self, items: Iterable[CatalogItem], vocabulary: Optional[SearchVocabulary] = None) -> None:
        all_items = list(items)
        self.vocabulary = vocabulary if vocabulary is not None else SearchVocabulary.of(all_items)
        self.total = len(all_items)
        self._colour_maps: Dict[Tuple[str, ...], Dict[str, str]] = {}
        self._material_maps: Dict[Tuple[str, ...], Dict[str, str]] = {}
        entries: List[_Entry] = []
        seen: Set[str] = set()
        for item in all_items:
            if item.sku in seen:
                raise ValueError(f"SKU {item.sku!r} appears twice")
            seen.add(item.sku)
            entry = self._entry(item)
            if entry is not None:
                entries.append(entry)
        # Rows in (cheapest price, SKU) order: a search walks them cheapest first and can stop early.
        entries.sort(key=lambda entry: (entry.min_price, entry.item.sku))
        self.entries: Tuple[_Entry, ...] = tuple(entries)
        self.by_type: Dict[str, Set[int]] = {}
        self.by_colour: Dict[str, Set[int]] = {}
        self.by_material: Dict[str, Set[int]] = {}
        self.by_word: Dict[str, Set[int]] = {}
        self.by_attribute: Dict[str, Set[int]] = {}
        for row, entry in enumerate(entries):
            for value in entry.types:
                self.by_type.setdefault(value, set()).add(row)
            for value in entry.words:
                self.by_word.setdefault(value, set()).add(row)
            for variant in entry.variants:
                for value in variant.colours:
                    self.by_colour.setdefault(value, set()).add(row)
                for value in variant.materials:
                    self.by_material.setdefault(value, set()).add(row)
                for value in variant.attributes:
                    self.by_attribute.setdefault(value, set()).add(row)

    def __len__(self) -> int:
        return len(self.entries)

    def variant(self, sku: str) -> Optional[Tuple[CatalogItem, ItemVariant]]:
        """The in-stock product a variant SKU (or a product SKU, its first variant) belongs to."""
        return self._by_sku.get(sku)

    def items_of_type(self, product_type: str) -> List[CatalogItem]:
        """The in-stock products of a type, cheapest first."""
        return [self.entries[row].item for row in sorted(self.by_type.get(product_type, ()))]

    @functools.cached_property
    def _by_sku(self) -> Dict[str, Tuple[CatalogItem, ItemVariant]]:
        found: Dict[str, Tuple[CatalogItem, ItemVariant]] = {}
        for entry in self.entries:
            for variant in entry.item.variants:
                found[variant.sku] = (entry.item, variant)
            found.setdefault(entry.item.sku, (entry.item, entry.variants[0].variant))
        return found

    def _entry(self, item: CatalogItem) -> Optional[_Entry]:
        vocabulary = self.vocabulary
        option_values = {_value(value) for variant in item.variants for _, value in variant.options}
        shared = [tag for tag in item.tags if tag not in option_values]  # tags from options belong to one variant
        shared_colours = [tag for tag in shared if vocabulary.kind_of(tag) == COLOUR]
        shared_materials = [tag for tag in shared if vocabulary.kind_of(tag) == MATERIAL]
        variants = []
        for position, variant in enumerate(item.variants):
            if not variant.in_stock:
                continue
            own = [(_option_kind(name, _value(raw)), _value(raw)) for name, raw in variant.options]
            colours = shared_colours + [value for kind, value in own if kind == COLOUR]
            materials = shared_materials + [value for kind, value in own if kind == MATERIAL]
            colour_key, material_key = tuple(colours), tuple(materials)
            if colour_key not in self._colour_maps:  # the same few combinations recur across the catalog
                self._colour_maps[colour_key] = _with_family(colours, _COLOUR_FAMILY_OF, COLOUR_WORDS)
            if material_key not in self._material_maps:
                self._material_maps[material_key] = _with_family(materials, _MATERIAL_GROUP_OF, MATERIAL_WORDS)
            variants.append(_Variant(
                variant, position, self._colour_maps[colour_key], self._material_maps[material_key],
                frozenset(shared) | {value for _, value in own if value},
            ))
        words: Set[str] = set(_key(item.title).split())
        for tag in item.tags:
            words.update(_key(tag).split())
        if item.collection:
            words.update(_key(item.collection).split())
        if not variants:
            return None  # out of stock: never a match
        prices = [variant.variant.price for variant in variants]
        return _Entry(item, vocabulary.item_types(item), frozenset(words), tuple(variants), min(prices), max(prices))


# ---------------------------------------------------------------------------------------------
# Searching


@dataclass(frozen=True)
class Preferences:
    """What the shopper said before (quiz answers, earlier searches), to order equally good matches."""

    max_price: Optional[Decimal] = None
    min_price: Optional[Decimal] = None
    liked_tags: FrozenSet[str] = frozenset()  # quiz: oak, walnut
    excluded_tags: FrozenSet[str] = frozenset()  # quiz: no leather — hidden unless asked for by name
    product_type: Optional[str] = None  # the type of the previous search


@dataclass(frozen=True)
class Match:
    item: CatalogItem
    variant: ItemVariant  # the in-stock variant that fits best (its sku, title, price, options)
    score: int  # criteria met × 1000 + other words found × 100 + preference boosts
    matched: Tuple[str, ...]  # the criteria met: product_type, colour, material, price
    why: Tuple[str, ...]  # ("standing desk", "oak", "under $400") for "standing desk · oak · $389"

    @property
    def price(self) -> Decimal:
        return self.variant.price


@dataclass(frozen=True)
class SearchResult:
    criteria: SearchCriteria  # as searched (values in the vocabulary's form)
    matches: Tuple[Match, ...]
    relaxed: Tuple[str, ...]  # of RELAXATION_ORDER; () when the matches meet everything asked
    note: Optional[str]  # "Nothing in oak under $400 right now — the closest:"; None when nothing was relaxed
    # ("Nothing in indigo right now." when understood but nothing is in stock that comes close)
    understood: bool  # False: the message names nothing the catalog has — offer the quiz
    unknown: Tuple[str, ...]  # criteria whose value the catalog does not have at all ("colour" for purple)
    considered: int  # in-stock products searched


def _canonical(criteria: SearchCriteria, vocabulary: SearchVocabulary) -> SearchCriteria:
    """Values written another way ("Sofas", "gray") in the vocabulary's form; unknown ones unchanged."""
    values = {}
    for kind in KINDS:
        value = getattr(criteria, kind)
        if value is None or vocabulary.knows(kind, value):
            values[kind] = value
            continue
        meaning = vocabulary.phrases.get(_key(value))
        values[kind] = meaning[1] if meaning is not None and meaning[0] == kind else _key(value) or value
    low, high = criteria.min_price, criteria.max_price
    low = None if low is None else Decimal(str(low))
    high = None if high is None else Decimal(str(high))
    if low is not None and high is not None and low > high:
        low, high = high, low
    return SearchCriteria(values[TYPE], values[COLOUR], values[MATERIAL], low, high, tuple(criteria.words),
                          tuple(criteria.excluded))


def _expand(values: Iterable[str]) -> Set[str]:
    result = set()
    for value in values:
        result.add(value)
        result |= MATERIAL_GROUPS.get(value, frozenset()) | COLOUR_FAMILIES.get(value, frozenset())
    return result


def _states(asked: Sequence[str], broader: bool) -> List[Tuple[Tuple[str, ...], int]]:
    """(relaxed names, required bits) to try in order. The type is kept as long as anything else can give:
    nothing relaxed, then one other criterion (in RELAXATION_ORDER: price +25%, colour, material, price),
    then two…; only then the broader type with the same steps, then no type. Never all criteria dropped.
    Every state comes after each state that undoes one of its relaxations (search relies on it)."""
    levels: List[List[Tuple[Optional[str], int]]] = []
    if TYPE in asked:
        levels.append([(None, _T)] + ([("broader_type", _T_BROAD)] if broader else []) + [("product_type", 0)])
    if COLOUR in asked:
        levels.append([(None, _C), ("colour", 0)])
    if MATERIAL in asked:
        levels.append([(None, _M), ("material", 0)])
    if "price" in asked:
        levels.append([(None, _P), ("price_stretched", _P_WIDE), ("price", 0)])
    rank = {name: position for position, name in enumerate(RELAXATION_ORDER)}
    states = []
    for combination in itertools.product(*levels):
        required = 0
        relaxed = []
        for name, bits in combination:
            required |= bits
            if name is not None:
                relaxed.append(name)
        if not required:
            continue
        type_level = 2 if "product_type" in relaxed else 1 if "broader_type" in relaxed else 0
        others = [name for name in relaxed if name not in ("product_type", "broader_type")]
        order = sorted((rank[name] for name in others), reverse=True)
        states.append(((type_level, len(others), order), tuple(sorted(relaxed, key=rank.__getitem__)), required))
    states.sort(key=lambda state: state[0])
    return [(relaxed, required) for _, relaxed, required in states]


def _note(criteria: SearchCriteria, relaxed: Tuple[str, ...], collections: FrozenSet[str],
          found: bool = True) -> str:
    """ "Nothing in oak under $400 right now — the closest:"; with the type when it was relaxed too ("No
    bunk beds right now — the closest:"); "Nothing in indigo right now." when nothing is close either."""
    parts = []
    described = " ".join(value for value in (criteria.colour, criteria.material) if value)
    if described:
        parts.append(f"in {described}")
    if criteria.price_phrase:
        parts.append(criteria.price_phrase)
    if criteria.product_type and ("product_type" in relaxed or "broader_type" in relaxed or not found):
        if criteria.product_type in collections:
            head = f"Nothing for the {_label(criteria.product_type)}"
        else:
            head = f"No {plural(_label(criteria.product_type))}"
    else:
        head = "Nothing"
    said = f"{' '.join([head] + parts)} right now"
    if not found:
        return said + "."
    # As the quiz engine's note: "a little outside your budget" when the price range was stretched.
    closest = "the closest, a little outside your budget:" if "price_stretched" in relaxed else "the closest:"
    return f"{said} — {closest}"


def search(criteria: SearchCriteria, items: Union[CatalogIndex, Iterable[CatalogItem]],
           preferences: Optional[Preferences] = None, limit: int = 3) -> SearchResult:
    """The best `limit` in-stock products for the criteria, or the closest ones with a note (see the module).
    Pass a CatalogIndex (built once per catalog snapshot) rather than the items for speed."""
    index = items if isinstance(items, CatalogIndex) else CatalogIndex(items)
    vocabulary = index.vocabulary
    preferences = preferences or Preferences()
    criteria = _canonical(criteria, vocabulary)
    unknown = tuple(kind for kind in KINDS if getattr(criteria, kind) is not None
                    and not vocabulary.knows(kind, getattr(criteria, kind)))
    if not criteria.has_price and not any(vocabulary.knows(kind, getattr(criteria, kind)) for kind in KINDS):
        return SearchResult(criteria, (), (), None, False, unknown, len(index))
    return _Search(index, criteria, preferences).run(max(limit, 0), unknown)


class _Search:
    """One search: variants are judged lazily (only the rows a relaxation step can match) and cached."""

    def __init__(self, index: CatalogIndex, criteria: SearchCriteria, preferences: Preferences) -> None:
        self.index, self.criteria, self.preferences = index, criteria, preferences
        vocabulary = index.vocabulary
        self.product_type, self.colour, self.material = criteria.product_type, criteria.colour, criteria.material
        self.broader_type = vocabulary.broader.get(self.product_type) if self.product_type else None
        self.low, self.high = criteria.min_price, criteria.max_price
        stretch = Decimal(str(BUDGET_STRETCH))  # as the quiz engine: up to 25% over a ceiling, under a floor
        self.wide_low = None if self.low is None else self.low / stretch
        self.wide_high = None if self.high is None else self.high * stretch
        asked_values = {value for value in (self.product_type, self.colour, self.material) if value}
        # What the message rules out always applies; what was ruled out before, unless asked for by name.
        ruled_out = {_value(tag) for tag in preferences.excluded_tags}
        self.excluded = _expand(criteria.excluded) | (ruled_out - _expand(asked_values))
        self.liked = {_value(tag) for tag in preferences.liked_tags}
        self.words = set(criteria.words)
        self.of_type = index.by_type.get(self.product_type, set()) if self.product_type else set()
        self.of_broader = index.by_type.get(self.broader_type, set()) if self.broader_type else set()
        previous = preferences.product_type
        if previous and previous not in vocabulary.types:  # "chairs" → chair
            meaning = vocabulary.phrases.get(_key(previous))
            previous = meaning[1] if meaning is not None and meaning[0] == TYPE else previous
        self.previous_type = previous
        self.use_previous_type = bool(previous) and not self.product_type
        self.has_budget = preferences.max_price is not None or preferences.min_price is not None
        self.max_boost = min(len(self.liked) + (2 if self.use_previous_type else 0) + (1 if self.has_budget else 0),
                             99)
        self.asked = [kind for kind in KINDS if getattr(criteria, kind) is not None] + (
            ["price"] if criteria.has_price else [])
        self.judged: Dict[int, List[Tuple[int, _Variant]]] = {}

    def run(self, limit: int, unknown: Tuple[str, ...]) -> SearchResult:
        for relaxed, required in _states(self.asked, self.broader_type is not None):
            found = self._best(required, limit)
            if found:
                matches = tuple(self._match(entry, variant, bits, score, relaxed)
                                for _, _, _, entry, variant, bits, score in found)
                note = _note(self.criteria, relaxed, self.index.vocabulary.collections) if relaxed else None
                return SearchResult(self.criteria, matches, relaxed, note, True, unknown, len(self.index))
        note = _note(self.criteria, (), self.index.vocabulary.collections, found=False) if limit else None
        return SearchResult(self.criteria, (), (), note, True, unknown, len(self.index))

    def _rows(self, required: int) -> Iterable[int]:
        """The rows that can meet `required`, cheapest first: the intersection of the postings it names."""
        index = self.index
        sets = []
        if required & _T:
            sets.append(self.of_type)
        elif required & _T_BROAD:
            sets.append(self.of_broader)
        if required & _C:
            sets.append(index.by_colour.get(self.colour or "", set()))
        if required & _M:
            sets.append(index.by_material.get(self.material or "", set()))
        if not sets:
            return range(len(index.entries))  # only a price: every row, cheapest first
        sets.sort(key=len)
        rows = set(sets[0])
        for other in sets[1:]:
            rows &= other
        return sorted(rows)

    def _variants(self, row: int) -> List[Tuple[int, _Variant]]:
        """The row's in-stock variants that are not ruled out, each with the criteria bits it meets."""
        cached = self.judged.get(row)
        if cached is not None:
            return cached
        item_bits = (_T | _T_BROAD if row in self.of_type else 0) | (_T_BROAD if row in self.of_broader else 0)
        result = []
        low, high, wide_low, wide_high = self.low, self.high, self.wide_low, self.wide_high
        for variant in self.index.entries[row].variants:
            if self.excluded and not self.excluded.isdisjoint(variant.attributes):
                continue
            bits = item_bits
            if self.colour and self.colour in variant.colours:
                bits |= _C
            if self.material and self.material in variant.materials:
                bits |= _M
            price = variant.variant.price
            if not self.criteria.has_price:
                pass  # no price asked: no price bits, so scores count only what was asked
            elif (low is None or price >= low) and (high is None or price <= high):
                bits |= _P | _P_WIDE
            elif (wide_low is None or price >= wide_low) and (wide_high is None or price <= wide_high):
                bits |= _P_WIDE
            result.append((bits, variant))
        self.judged[row] = result
        return result

    def _boost(self, entry: _Entry, variant: _Variant) -> int:
        points = len(self.liked & variant.attributes)
        if self.use_previous_type and self.previous_type in entry.types:
            points += 2  # "anything in walnut?" after "chairs": walnut chairs first
        if self.has_budget:
            price, preferences = variant.variant.price, self.preferences
            if (preferences.max_price is None or price <= preferences.max_price) and (
                    preferences.min_price is None or price >= preferences.min_price):
                points += 1
        return min(points, 99)

    def _best(self, required: int, limit: int) -> List[Tuple[Any, ...]]:
        """The top `limit` rows meeting `required`: (-score, price, sku, entry, variant, bits, score), best first.

        Rows come cheapest first. The states before this one failed, so no row meets more criteria than
        `required` names; a row's score can only exceed that by its words and preference boosts. Once `limit`
        rows are kept, a row that cannot beat the last of them at its price is skipped, and the walk stops
        when no row could (the rows with words or liked tags are the only ones that still might)."""
        if limit <= 0:
            return []
        entries = self.index.entries
        base = bin(required & _STRICT).count("1") * 1000
        word_points = min(len(self.words), 9) * 100
        boost_points = self.max_boost - (1 if self.has_budget else 0)
        pref_high = self.preferences.max_price
        lower = self.low if required & _P else self.wide_low if required & _P_WIDE else None
        upper = self.high if required & _P else self.wide_high if required & _P_WIDE else None
        special = self._special()
        kept: List[Tuple[Any, ...]] = []
        plain_done = False
        for row in self._rows(required):
            entry = entries[row]
            if upper is not None and entry.min_price > upper:
                break  # rows are in price order: none further is in range
            if lower is not None and entry.max_price < lower:
                continue
            if len(kept) >= limit:
                budget = 1 if self.has_budget and (pref_high is None or entry.min_price <= pref_high) else 0
                worst = kept[-1][:2]
                if worst < (-(base + word_points + boost_points + budget), entry.min_price):
                    break
                if row not in special:
                    if plain_done or worst < (-(base + budget), entry.min_price):
                        plain_done = True
                        continue
            best = None
            for bits, variant in self._variants(row):
                if bits & required != required:
                    continue
                extra = self._boost(entry, variant)
                key = (-bin(bits & _STRICT).count("1"), -extra, variant.variant.price, variant.position)
                if best is None or key < best[0]:
                    best = (key, bits, variant, extra)
            if best is None:
                continue
            key, bits, variant, extra = best
            score = -key[0] * 1000 + min(len(self.words & entry.words), 9) * 100 + extra
            candidate = (-score, variant.variant.price, entry.item.sku, entry, variant, bits, score)
            if len(kept) < limit or candidate[:3] < kept[-1][:3]:
                bisect.insort(kept, candidate, key=lambda kept_row: kept_row[:3])
                del kept[limit:]
        return kept

    def _special(self) -> Set[int]:
        """Rows that may score more than their criteria: with one of the words, a liked tag, the earlier type."""
        index = self.index
        rows: Set[int] = set()
        for word in self.words:
            rows |= index.by_word.get(word, set())
        for tag in self.liked:
            rows |= index.by_attribute.get(tag, set())
        if self.use_previous_type:
            rows |= index.by_type.get(self.previous_type or "", set())
        return rows

    def _match(self, entry: _Entry, variant: _Variant, bits: int, score: int, relaxed: Tuple[str, ...]) -> Match:
        matched: List[str] = []
        why: List[str] = []
        if bits & _T and self.product_type:
            matched.append(TYPE)
            why.append(_label(self.product_type))
        elif bits & _T_BROAD and self.broader_type and "broader_type" in relaxed:
            why.append(_label(self.broader_type))
        if bits & _C and self.colour:
            matched.append(COLOUR)
            why.append(variant.colours[self.colour])
        if bits & _M and self.material:
            matched.append(MATERIAL)
            why.append(variant.materials[self.material])
        if bits & _P and self.criteria.price_phrase:
            matched.append("price")
            why.append(self.criteria.price_phrase)
        why.extend(sorted(self.liked & variant.attributes))
        return Match(entry.item, variant.variant, score, tuple(matched), tuple(dict.fromkeys(why))[:MAX_WHY])
