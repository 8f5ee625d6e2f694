"""Catalog search (bot/catalog/search.py): the vocabulary the catalog gives, reading a message (entities and
text), per-variant matching, ranking with preferences, the closest alternatives with a note, and speed —
against the demo catalog (data/catalog.yml, loaded without a database) and small synthetic catalogs."""
from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from bot.catalog.loader import load_catalog
from bot.catalog.search import (
    CatalogIndex, CatalogItem, ItemVariant, Preferences, SearchCriteria, SearchResult, SearchVocabulary,
    criteria_from, search,
)
from bot.models.catalog import Product, ProductVariant
from bot.settings import PROJECT_ROOT

CATALOG_FILE = PROJECT_ROOT / "data" / "catalog.yml"


@pytest.fixture(scope="module")
def items() -> List[CatalogItem]:
    return [CatalogItem.from_input(product, "https://shop.example") for product in load_catalog(CATALOG_FILE, "USD")]


@pytest.fixture(scope="module")
def index(items: List[CatalogItem]) -> CatalogIndex:
    return CatalogIndex(items)


def ask(index: CatalogIndex, text: str, entities: Optional[Mapping[str, Any]] = None,
        preferences: Optional[Preferences] = None, limit: int = 3) -> SearchResult:
    return search(criteria_from(text, entities or {}, index.vocabulary), index, preferences, limit)


def picks(result: SearchResult) -> List[Tuple[str, str, Decimal]]:
    return [(match.item.sku, match.variant.sku, match.variant.price) for match in result.matches]


def skus(result: SearchResult) -> List[str]:
    return [match.item.sku for match in result.matches]


def item(sku: str, title: str, tags: Sequence[str], *variants: Tuple[str, Dict[str, str], str, bool],
         price: str = "100", in_stock: bool = True, collection: Optional[str] = None) -> CatalogItem:
    """A synthetic product; without variants, one default variant."""
    built = tuple(ItemVariant(variant_sku, "/".join(options.values()) or "Default", tuple(options.items()),
                              Decimal(variant_price), stock) for variant_sku, options, variant_price, stock in variants)
    if not built:
        built = (ItemVariant(sku, "Default", (), Decimal(price), in_stock),)
    return CatalogItem(sku, title, "", f"https://shop/{sku}", None, frozenset(tags), collection, built)


# --- The issue's example and the demo catalog --------------------------------------------------------


def test_the_issue_example_finds_the_oak_standing_desk_in_the_size_under_budget(index: CatalogIndex) -> None:
    text = "do you have standing desks under $400 in oak?"
    criteria = criteria_from(text, {}, index.vocabulary)
    assert (criteria.product_type, criteria.material, criteria.colour) == ("standing-desk", "oak", None)
    assert (criteria.min_price, criteria.max_price) == (None, Decimal("400"))
    result = search(criteria, index)
    assert result.understood and result.relaxed == () and result.note is None
    assert picks(result) == [("OE-DK-001", "OE-DK-001-120", Decimal("389.00"))]  # not the $449 160 cm
    match = result.matches[0]
    assert match.why == ("standing desk", "oak", "under $400")
    assert match.matched == ("product_type", "material", "price")
    assert match.variant.options_map == {"Size": "120 × 70 cm"}
    assert match.item.url == "https://shop.example/products/rise-standing-desk"
    # The same from Rasa's entities (plural, as said), with the price only in the entity.
    by_entities = criteria_from("got any?", {"product_type": "standing desks", "price_range": "under $400",
                                             "material": "oak"}, index.vocabulary)
    assert by_entities == replace(criteria, words=by_entities.words)
    assert picks(search(by_entities, index)) == picks(result)


def test_couch_is_a_sofa_and_the_colour_picks_the_variant(index: CatalogIndex) -> None:
    result = ask(index, "a sage couch please")
    assert result.criteria.product_type == "sofa" and result.criteria.colour == "sage"
    assert picks(result) == [("OE-SO-001", "OE-SO-001-SGE", Decimal("1290.00"))]
    assert result.matches[0].why == ("sofa", "sage")
    assert ask(index, "any settees?").criteria.product_type == "sofa"
    # A colour family: green finds the green loveseat and the sage sofa (named as sage).
    green = ask(index, "green sofas")
    assert picks(green) == [("OE-SO-002", "OE-SO-002", Decimal("980.00")),
                            ("OE-SO-001", "OE-SO-001-SGE", Decimal("1290.00"))]
    assert [match.why for match in green.matches] == [("sofa", "green"), ("sofa", "sage")]


def test_an_out_of_stock_variant_is_not_offered_in_that_colour(index: CatalogIndex) -> None:
    result = ask(index, "do you have the harbour sofa in indigo?")
    assert result.criteria.colour == "indigo" and result.unknown == ()  # the catalog has indigo, just not now
    assert result.relaxed == ("colour",)
    assert result.note == "Nothing in indigo right now — the closest:"
    assert picks(result) == [("OE-SO-001", "OE-SO-001-NAT", Decimal("1290.00")),  # "harbour" ranks it first
                             ("OE-SO-002", "OE-SO-002", Decimal("980.00"))]
    assert all(match.variant.sku != "OE-SO-001-IND" for match in ask(index, "indigo", limit=50).matches)
    indigo = ask(index, "indigo")  # understood, but nothing indigo is in stock and nothing else is close
    assert indigo.understood and indigo.matches == () and indigo.note == "Nothing in indigo right now."
    assert ask(index, "charcoal lamp").relaxed == ("colour",)  # the charcoal Pebble glaze is out of stock too


def test_an_out_of_stock_product_is_never_a_match(index: CatalogIndex) -> None:
    for text in ("shelving", "oak shelves", "a bookcase", "stack shelving unit", "oak", "living room storage",
                 "under $300", "modular"):
        result = ask(index, text, limit=100)
        assert "OE-ST-001" not in skus(result), text
    # The only shelving is out of stock: the closest are the broader kind, storage.
    result = ask(index, "do you have a bookcase in oak?")
    assert result.criteria.product_type == "shelving" and result.relaxed == ("broader_type",)
    assert result.note == "No shelving in oak right now — the closest:"
    assert skus(result) == ["OE-NS-001", "OE-DK-003", "OE-ST-004"]
    assert [match.why for match in result.matches][0] == ("storage", "oak")
    bunk = ask(index, "bunk beds")
    assert bunk.note == "No bunk beds right now — the closest:"
    assert picks(bunk) == [("OE-BD-001", "OE-BD-001-DBL", Decimal("990.00"))]


def test_over_budget_finds_the_closest_with_a_note(index: CatalogIndex) -> None:
    result = ask(index, "walnut chair under $200")
    assert result.relaxed == ("price_stretched",)
    assert result.note == "Nothing in walnut under $200 right now — the closest, a little outside your budget:"
    assert picks(result) == [("OE-CH-003", "OE-CH-003", Decimal("229.00"))]
    assert result.matches[0].why == ("chair", "walnut")  # no price phrase: it is over
    result = ask(index, "oak standing desk under $300")
    assert result.relaxed == ("price",)
    assert result.note == "Nothing in oak under $300 right now — the closest:"
    assert picks(result) == [("OE-DK-001", "OE-DK-001-120", Decimal("389.00"))]
    # The type goes last: a sofa in oak does not exist, so oak things under $400 do not come before sofas.
    result = ask(index, "an oak sofa")
    assert result.relaxed == ("material",) and skus(result) == ["OE-SO-002", "OE-SO-001"]
    result = ask(index, "walnut sofa under $100")
    assert result.relaxed == ("material", "price")
    assert result.note == "Nothing in walnut under $100 right now — the closest:"


def test_typos_are_read_as_the_closest_catalog_word(index: CatalogIndex) -> None:
    result = ask(index, "walnutt tabel")
    assert (result.criteria.product_type, result.criteria.material) == ("table", "walnut")
    assert picks(result) == [("OE-TB-002", "OE-TB-002", Decimal("1450.00"))]
    assert ask(index, "standng desk").criteria.product_type == "standing-desk"
    assert ask(index, "lether chiar").criteria.material == "leather"
    # A word of the catalog is not a typo of another ("harbour", "lounge"), a stop word neither.
    harbour = criteria_from("harbour lounge", {}, index.vocabulary)
    assert (harbour.product_type, harbour.colour, harbour.material) == (None, None, None)
    assert harbour.words == ("harbour", "lounge")


def test_grey_and_gray_colour_and_color(index: CatalogIndex) -> None:
    expected = [("OE-TX-001", "OE-TX-001-GRY", Decimal("89.00"))]
    assert picks(ask(index, "a gray throw")) == expected
    assert picks(ask(index, "grey throws")) == expected
    assert picks(ask(index, "throw", {"color": "Gray"})) == expected
    assert picks(ask(index, "a throw in the colour grey")) == expected
    assert ask(index, "gray").criteria.colour == "grey"


def test_plurals_and_synonyms(index: CatalogIndex) -> None:
    vocabulary = index.vocabulary
    for text, expected in [("benches", "bench"), ("lamps", "lamp"), ("lights", "lamp"), ("lighting", "lamp"),
                           ("sit-stand desks", "standing-desk"), ("chest of drawers", "dresser"),
                           ("dressers", "dresser"), ("bookshelves", "shelving"), ("nightstands", "bedside-table"),
                           ("rugs", "rug"), ("table lamps", "table-lamp"), ("dining tables", "dining-table"),
                           ("something for the bedroom", "bedroom")]:
        assert criteria_from(text, {}, vocabulary).product_type == expected, text
    # "dining chairs": the type is chair; the collection's word helps the ranking.
    dining = criteria_from("dining chairs", {}, vocabulary)
    assert dining.product_type == "chair" and dining.words == ("dining",)


def test_the_vocabulary_sorts_tags_into_types_colours_materials_and_uses(index: CatalogIndex) -> None:
    vocabulary = index.vocabulary
    assert {"chair", "sofa", "standing-desk", "desk", "floor-lamp", "lamp", "dining-table", "rug", "bed",
            "shelving", "storage", "living room", "lighting"} <= vocabulary.types
    assert {"black", "white", "green", "natural", "brown", "grey", "sage", "clay", "indigo",
            "moss"} <= vocabulary.colours
    assert {"oak", "walnut", "ash", "pine", "linen", "wool", "velvet", "leather", "brass", "ceramic", "steel",
            "acacia", "mesh", "wood", "metal"} <= vocabulary.materials
    assert not vocabulary.types & (vocabulary.colours | vocabulary.materials)
    for use in ("small-space", "ergonomic", "kids-safe", "outdoor", "seats-8", "three-seat", "standing"):
        assert vocabulary.kind_of(use) == "use" and use not in vocabulary.types
    assert "purple" not in vocabulary.colours  # known as a colour word, but the catalog has none
    assert vocabulary.broader["bunk-bed"] == "bed" and vocabulary.broader["standing-desk"] == "desk"
    assert vocabulary.broader["shelving"] == "storage"
    # "table" on the Pebble table lamp says what kind of lamp it is: tables are tables.
    tables = ask(index, "tables", limit=20)
    assert "OE-LT-002" not in skus(tables)
    assert skus(tables) == ["OE-TB-001", "OE-NS-001", "OE-TB-003", "OE-TB-004", "OE-TB-002"]
    # Variant options count: Finish: Brass is a material, Finish: Black a colour.
    assert picks(ask(index, "brass desk lamp")) == [("OE-LT-004", "OE-LT-004-BRS", Decimal("139.00"))]
    assert picks(ask(index, "black desk lamp")) == [("OE-LT-004", "OE-LT-004-BLK", Decimal("119.00"))]
    assert picks(ask(index, "walnut lounge chair")) == [("OE-CH-001", "OE-CH-001-WAL", Decimal("389.00")),  # lounge
                                                        ("OE-CH-003", "OE-CH-003", Decimal("229.00"))]


# --- What the shopper said before ----------------------------------------------------------------------


def test_liked_tags_rank_first_when_the_query_is_just_a_type(index: CatalogIndex) -> None:
    assert skus(ask(index, "chairs")) == ["OE-CH-005", "OE-CH-003", "OE-OC-001"]  # cheapest first
    liked = ask(index, "chairs", preferences=Preferences(liked_tags=frozenset({"oak"})))
    assert picks(liked)[0] == ("OE-CH-001", "OE-CH-001-OAK", Decimal("349.00"))
    assert liked.matches[0].why == ("chair", "oak")
    assert skus(liked)[1:] == ["OE-CH-005", "OE-CH-003"]
    both = ask(index, "chairs", preferences=Preferences(liked_tags=frozenset({"oak", "walnut"})))
    assert picks(both)[:2] == [("OE-CH-003", "OE-CH-003", Decimal("229.00")),
                               ("OE-CH-001", "OE-CH-001-OAK", Decimal("349.00"))]
    # What the shopper asks now beats what they liked before.
    assert skus(ask(index, "ash chairs", preferences=Preferences(liked_tags=frozenset({"oak"})))) == ["OE-CH-002"]


def test_excluded_tags_hide_items_unless_asked_for(index: CatalogIndex) -> None:
    no_leather = Preferences(excluded_tags=frozenset({"leather"}))
    assert "OE-OC-002" in skus(ask(index, "chairs", limit=20))
    assert "OE-OC-002" not in skus(ask(index, "chairs", preferences=no_leather, limit=20))
    assert skus(ask(index, "brown chairs", preferences=no_leather, limit=20)) == ["OE-CH-003"]
    assert skus(ask(index, "a leather chair", preferences=no_leather)) == ["OE-OC-002"]  # asked by name
    # Said in the message: never relaxed, even when nothing else is left.
    text = criteria_from("chairs, no leather", {}, index.vocabulary)
    assert text.excluded == ("leather",) and text.material is None
    assert "OE-OC-002" not in skus(search(text, index, limit=20))
    assert skus(ask(index, "sofa without velvet")) == ["OE-SO-001"]
    assert skus(ask(index, "leather-free office chair")) == ["OE-OC-001"]


def test_the_earlier_type_and_budget_order_a_follow_up(index: CatalogIndex) -> None:
    plain = ask(index, "anything in walnut?")
    assert skus(plain) == ["OE-ST-003", "OE-CH-003", "OE-CH-001"]  # $89 stand, $229 chair, $389 lounge chair
    follow_up = ask(index, "anything in walnut?", preferences=Preferences(product_type="chair"))
    assert picks(follow_up)[:2] == [("OE-CH-003", "OE-CH-003", Decimal("229.00")),
                                    ("OE-CH-001", "OE-CH-001-WAL", Decimal("389.00"))]
    budget = ask(index, "chairs", preferences=Preferences(min_price=Decimal("300"), max_price=Decimal("400")))
    assert picks(budget)[0] == ("OE-CH-001", "OE-CH-001-OAK", Decimal("349.00"))


# --- Reading entities and text ---------------------------------------------------------------------------


def test_wrong_or_unknown_entity_values(index: CatalogIndex) -> None:
    vocabulary = index.vocabulary
    # NLU called oak a product type: it is a material; the type comes from the text.
    criteria = criteria_from("show me oak chairs", {"product_type": "oak"}, vocabulary)
    assert (criteria.product_type, criteria.material) == ("chair", "oak")
    # A value the catalog does not have is kept, so the reply can say there is nothing in it.
    purple = ask(index, "a purple sofa", {"colour": "purple"})
    assert purple.criteria.colour == "purple" and purple.unknown == ("colour",)
    assert purple.relaxed == ("colour",) and purple.note == "Nothing in purple right now — the closest:"
    assert skus(purple) == ["OE-SO-002", "OE-SO-001"]
    # Something the catalog has beats something it lacks; a known entity beats the text.
    assert criteria_from("a sofa", {"product_type": "gizmo"}, vocabulary).product_type == "sofa"
    lamp = ask(index, "something for my desk", {"product_type": "lamp"})
    assert lamp.criteria.product_type == "lamp" and skus(lamp)[0] == "OE-LT-004"
    # Lists (several entities of a kind), Rasa entity dicts, junk and missing values.
    listed = criteria_from("", {"product_type": [{"value": "couches"}], "colour": ["  ", None, "Sage"],
                                "material": None, "price_range": "between 1000 and 1500"}, vocabulary)
    assert (listed.product_type, listed.colour, listed.min_price, listed.max_price) == (
        "sofa", "sage", Decimal("1000"), Decimal("1500"))
    assert criteria_from("chairs", {"price_range": "cheap"}, vocabulary).max_price is None
    assert criteria_from("chairs under 300", {"price_range": "cheap"}, vocabulary).max_price == Decimal("300")
    assert criteria_from("sofa", {"material": "no leather"}, vocabulary).material is None
    unknown_type = ask(index, "do you sell spaceships?", {"product_type": "spaceships"})
    assert unknown_type.criteria.product_type == "spaceship" and unknown_type.unknown == ("product_type",)
    assert not unknown_type.understood and unknown_type.matches == ()
    green_spaceship = ask(index, "a green spaceship", {"product_type": "spaceship"})
    assert green_spaceship.understood and green_spaceship.relaxed == ("product_type",)
    assert green_spaceship.note == "No spaceships in green right now — the closest:"
    assert skus(green_spaceship) == ["OE-TX-005", "OE-AC-001", "OE-TX-002"]  # moss $25, sage $35, sage $39


def test_nothing_recognisable_is_not_understood(index: CatalogIndex) -> None:
    for text in ("hello, how are you?", "what's new", "something nice for my mum", "", "purple", "kids"):
        result = ask(index, text)
        assert not result.understood and result.matches == () and result.note is None, text
    assert ask(index, "purple").unknown == ("colour",)
    assert ask(index, "under $50").understood  # a price alone is something
    assert skus(ask(index, "under $50")) == ["OE-TX-005", "OE-AC-001", "OE-TX-002"]


@pytest.mark.parametrize("text, low, high", [
    ("lamps between 100 and 300", "100", "300"),
    ("lamps from $100 to $300", "100", "300"),
    ("lamps 100-300", "100", "300"),
    ("a sofa over 500", "500", None),
    ("a sofa for 1.5k", None, "1500"),
    ("a sofa, $1,200 max", None, "1200"),
    ("sofa 1000", None, "1000"),
    ("3-seat sofa", None, None),
    ("2 chairs", None, None),
    ("a 120 x 70 cm desk", None, None),
    ("a table that seats 6", None, None),
    ("ash dining chair set of 2", None, None),
])
def test_price_ranges_come_from_the_quiz_engines_parse_budget(index: CatalogIndex, text: str, low: Optional[str],
                                                              high: Optional[str]) -> None:
    criteria = criteria_from(text, {}, index.vocabulary)
    assert (criteria.min_price, criteria.max_price) == (low and Decimal(low), high and Decimal(high))


def test_price_ranges_pick_variants_within_them(index: CatalogIndex) -> None:
    between = ask(index, "lamps between 100 and 300")
    assert picks(between) == [("OE-LT-004", "OE-LT-004-BLK", Decimal("119.00")),
                              ("OE-LT-001", "OE-LT-001", Decimal("149.00")),
                              ("OE-LT-003", "OE-LT-003", Decimal("259.00"))]  # not the out-of-stock sconce
    assert between.matches[0].why == ("lamp", "between $100 and $300")
    over = ask(index, "beds over 1000")
    assert picks(over) == [("OE-BD-001", "OE-BD-001-QN", Decimal("1090.00"))]  # the King is out of stock
    assert over.matches[0].why == ("bed", "over $1,000")
    assert skus(ask(index, "dining tables over 500")) == ["OE-TB-004", "OE-TB-002"]
    assert picks(ask(index, "rug under 500")) == [("OE-RG-001", "OE-RG-001-S", Decimal("420.00"))]
    assert picks(ask(index, "rug over 500")) == [("OE-RG-001", "OE-RG-001-L", Decimal("690.00"))]


# --- Determinism, synthetic catalogs, ORM products ------------------------------------------------------


def test_the_same_input_gives_the_same_order(items: List[CatalogItem]) -> None:
    shuffled = list(items)
    random.Random(3).shuffle(shuffled)
    for text in ("chairs", "oak", "under $300", "indigo sofa", "lamps between 100 and 300", "white"):
        runs = []
        for catalog in (items, shuffled, list(reversed(items))):
            index = CatalogIndex(catalog)
            result = search(criteria_from(text, {}, index.vocabulary), index, limit=10)
            runs.append([(match.item.sku, match.variant.sku, match.score, match.why) for match in result.matches])
        assert runs[0] == runs[1] == runs[2], text
        assert runs[0], text
    # Equal score and price: by SKU.
    twins = [item("B-2", "Blue chair", ["chair", "blue"], price="50"), item("B-1", "Blue chair", ["chair", "blue"],
                                                                          price="50")]
    index = CatalogIndex(twins)
    assert skus(search(SearchCriteria(product_type="chair"), index)) == ["B-1", "B-2"]


def test_a_synthetic_catalog_with_variants_stock_and_families() -> None:
    catalog = [
        item("SO-1", "Cloud sofa", ["sofa", "velvet"],
             ("SO-1-RED", {"Colour": "Red"}, "900", False), ("SO-1-GRN", {"Colour": "Olive"}, "950", True)),
        item("SO-2", "Plain sofa", ["sofa", "linen", "grey"], price="700"),
        item("SO-3", "Gone sofa", ["sofa", "red"], price="400", in_stock=False),
        item("CH-1", "Smoked chair", ["chair"], ("CH-1-S", {"Finish": "Smoked Oak"}, "300", True),
             ("CH-1-B", {"Finish": "Black"}, "250", True)),
        item("LP-1", "Tall lamp", ["floor-lamp"], price="120"),
    ]
    index = CatalogIndex(catalog)
    vocabulary = index.vocabulary
    assert {"red", "olive", "grey", "black", "green"} <= vocabulary.colours
    assert {"smoked oak", "oak", "wood", "velvet", "linen"} <= vocabulary.materials
    assert "lamp" in vocabulary.types  # the head of floor-lamp, though no product is tagged lamp
    red = search(criteria_from("red sofa", {}, vocabulary), index)
    assert red.relaxed == ("colour",) and skus(red) == ["SO-2", "SO-1"]  # both red ones are out of stock
    assert [match.variant.sku for match in red.matches] == ["SO-2", "SO-1-GRN"]
    green = search(criteria_from("green couch", {}, vocabulary), index)
    assert [(match.variant.sku, match.why) for match in green.matches] == [("SO-1-GRN", ("sofa", "olive"))]
    oak = search(criteria_from("oak chair", {}, vocabulary), index)
    assert [(match.variant.sku, match.why) for match in oak.matches] == [("CH-1-S", ("chair", "smoked oak"))]
    assert picks(search(criteria_from("wooden chairs", {}, vocabulary), index)) == [("CH-1", "CH-1-S", Decimal("300"))]
    assert skus(search(criteria_from("lamps", {}, vocabulary), index)) == ["LP-1"]
    assert search(criteria_from("anything", {}, vocabulary), index).understood is False
    assert search(SearchCriteria(product_type="sofa"), index, limit=0).matches == ()
    empty = search(SearchCriteria(product_type="sofa"), [])
    assert empty.matches == () and not empty.understood


def test_items_from_orm_products() -> None:
    product = Product(sku="OE-X-1", handle="x", title="Xeno oak chair", description="A chair.", price=Decimal("120"),
                      currency="USD", url="https://shop/products/x", image_url="https://shop/x.jpg",
                      tags=["chair", "oak", "Gray"], collection="Living room", in_stock=True)
    product.variants = [
        ProductVariant(sku="OE-X-1-L", title="Large", options={"Size": "Large"}, price=Decimal("150"), in_stock=True,
                       position=2),
        ProductVariant(sku="OE-X-1-S", title="Small", options={"Size": "Small"}, price=Decimal("120"), in_stock=False,
                       position=1),
    ]
    converted = CatalogItem.from_product(product)
    assert converted.tags == frozenset({"chair", "oak", "grey"})
    assert [variant.sku for variant in converted.variants] == ["OE-X-1-S", "OE-X-1-L"]
    assert converted.variants[1].options == (("Size", "Large"),) and converted.price == Decimal("150")
    result = search(criteria_from("grey oak chair", {}, SearchVocabulary.of([converted])), [converted])
    assert picks(result) == [("OE-X-1", "OE-X-1-L", Decimal("150"))]
    bare = Product(sku="OE-X-2", title="Plain lamp", description=None, price=Decimal("10"), currency="USD",
                   url="https://shop/products/y", tags=None, in_stock=True)
    assert CatalogItem.from_product(bare).variants == (ItemVariant("OE-X-2", "Default", (), Decimal("10"), True),)


def test_criteria_as_json(index: CatalogIndex) -> None:
    criteria = criteria_from("oak standing desk under $400, no leather", {}, index.vocabulary)
    assert criteria.as_dict() == {"product_type": "standing-desk", "colour": None, "material": "oak",
                                  "min_price": None, "max_price": "400", "words": [], "excluded": ["leather"]}
