"""bot/catalog/refine.py on its own: how sizes compare, which product "the second one" points at, and the
stored criteria of the last search read back."""
from __future__ import annotations

from decimal import Decimal

import pytest

from bot.catalog.refine import positions_named, size_of, stored_criteria
from bot.catalog.search import CatalogItem, ItemVariant, SearchCriteria


def _item(tags=(), *variants: ItemVariant) -> CatalogItem:
    return CatalogItem("X-1", "Thing", "", "https://shop/x", None, frozenset(tags), None,
                       variants or (ItemVariant("X-1", "Default", (), Decimal(10)),))


@pytest.mark.parametrize("options, tags, size", [
    ((("Size", "160 × 80 cm"),), (), ("area", Decimal(12800))),
    ((("Size", "120x70"),), (), ("area", Decimal(8400))),
    ((("Size", "Queen"), ("Colour", "White")), (), ("named", Decimal(3))),
    ((("Length", "140 cm"),), (), ("length", Decimal(140))),
    ((), ("sofa", "three-seat"), ("seats", Decimal(3))),
    ((), ("table", "seats-8"), ("seats", Decimal(8))),
    ((("Colour", "Sage"),), ("sofa",), None),
])
def test_sizes_are_measured_so_that_only_like_compares_with_like(options, tags, size) -> None:
    variant = ItemVariant("X-1-A", "A", tuple(options), Decimal(10))
    assert size_of(_item(tags, variant), variant) == size


@pytest.mark.parametrize("words, position", [
    ("the second one", 1), ("and the last one", -1), ("number two please", 1), ("#3", 2), ("the 1 on top", 0),
    ("that one", None), ("one more thing", None),
])
def test_which_product_shown_a_message_points_at(words: str, position) -> None:
    assert positions_named(words.split()) == position


def test_the_stored_criteria_of_a_search_read_back_as_they_were() -> None:
    criteria = SearchCriteria("standing-desk", None, "oak", None, Decimal("400"), ("small",), ("leather",))
    assert stored_criteria(criteria.as_dict()) == criteria
    assert stored_criteria(None) == SearchCriteria()
    assert stored_criteria({"max_price": "lots"}).max_price is None
