"""`make bench-quiz`: quiz recommendations and catalog search at catalog scale. Generates 10,000 products from
random.Random(42), loads the demo quiz against them and times recommend, index builds, typed-answer matching
and catalog search over the same products, PASS/MISS against the targets, results in var/bench/quiz.json.
What each operation is: the README's "Quiz"."""
from __future__ import annotations

import argparse
import math
import random
import string
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy

from bench.harness import finish, latency_summary, log, machine, percentile, target, write_json
from bot.catalog.search import (
    CatalogIndex, CatalogItem, ItemVariant, Preferences, SearchResult, SearchVocabulary, criteria_from, search,
)
from bot.config_files import read_yaml_mapping
from bot.quiz import (
    CatalogVocabulary, ProductIndex, ProductRecord, Quiz, load_quiz, match_options, parse_quiz, recommend,
)
from bot.settings import PROJECT_ROOT
from bot.shared.text import plural

SEED = 42
DEFAULT_PRODUCTS = 10_000
DEFAULT_RECOMMENDATIONS = 10_000
DEFAULT_INDEX_BUILDS = 20
DEFAULT_MATCHES = 5_000
DEFAULT_SEARCHES = 5_000
DEFAULT_SEARCH_INDEX_BUILDS = 10
WARM_UP = 200
SEARCH_WARM_UP = 100
QUIZ_FILE = PROJECT_ROOT / "data" / "quizzes" / "room-makeover.yml"
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
JSON_PATH = BENCH_DIR / "quiz.json"
PROGRESS_EVERY_SECONDS = 2.0
TARGET_P99_MS = 20.0
OUT_OF_STOCK_SHARE = 0.08
SKIP_SHARE = 0.10

# type → (share of the catalog, price range in dollars, type tags, materials to pick from, use tags)
PRODUCT_TYPES: Tuple[Tuple[str, float, Tuple[int, int], Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]], ...] = (
    ("chair", 0.18, (45, 900), ("chair",), ("oak", "walnut", "ash", "pine", "fabric", "leather", "mesh", "velvet"),
     ("lounge", "dining", "office", "ergonomic", "stackable", "small-space", "outdoor", "swivel")),
    ("sofa", 0.08, (450, 4200), ("sofa",), ("linen", "fabric", "leather", "velvet", "wool"),
     ("three-seat", "two-seat", "lounge", "family", "small-space", "modular")),
    ("table", 0.14, (60, 3200), ("table",), ("oak", "walnut", "ash", "pine", "steel", "acacia"),
     ("dining", "side-table", "coffee-table", "small-space", "foldable", "outdoor", "seats-6", "seats-8")),
    ("desk", 0.08, (120, 1600), ("desk",), ("oak", "walnut", "pine", "steel"),
     ("standing", "electric", "ergonomic", "small-space", "office", "home-office", "writing-desk")),
    ("lamp", 0.16, (25, 650), ("lamp",), ("brass", "ceramic", "linen", "paper", "steel"),
     ("floor", "table-lamp", "desk-lamp", "dimmable", "pendant", "rechargeable", "small-space")),
    ("textile", 0.16, (15, 400), ("textile",), ("linen", "wool", "fabric", "velvet"),
     ("throw", "cushion", "rug", "blanket", "bedding", "table-runner")),
    ("storage", 0.12, (70, 2400), ("storage",), ("oak", "walnut", "pine", "steel", "ash"),
     ("shelving", "modular", "sideboard", "cabinet", "dresser", "small-space")),
    ("bed", 0.08, (250, 3800), ("bed",), ("oak", "walnut", "pine", "fabric", "velvet"),
     ("bunk-bed", "kids-safe", "storage", "small-space", "family")),
)
COLOURS = ("natural", "black", "white", "grey", "green", "brown", "cream", "gold")
ADJECTIVES = ("Linden", "Harbour", "Fold", "Rise", "Nook", "Ember", "Pebble", "Stack", "Alder", "Brook", "Cove", "Drift",
              "Fern", "Hollow", "Isle", "Juniper", "Kestrel", "Loom", "Marlow", "North", "Orchard", "Quill", "Rowan",
              "Sable", "Thistle", "Vale", "Wren", "Yarrow")
TYPO_SHARE = 1 / 3

# Catalog search: the shop's collections, and variants — which options each type varies by and their values.
COLLECTIONS = {"chair": "Living room", "sofa": "Living room", "table": "Dining", "desk": "Home office",
               "lamp": "Lighting", "textile": "Textiles", "storage": "Storage", "bed": "Bedroom"}
MULTI_VARIANT_SHARE = 0.40
VARIANT_OUT_OF_STOCK_SHARE = 0.15
VARIANT_OPTIONS: Mapping[str, Tuple[str, ...]] = {
    "chair": ("Colour",), "sofa": ("Colour", "Size"), "table": ("Finish", "Size"), "desk": ("Finish", "Size"),
    "lamp": ("Colour", "Finish"), "textile": ("Colour", "Size"), "storage": ("Finish",), "bed": ("Finish", "Size"),
}
VARIANT_COLOURS = ("Natural", "Black", "White", "Grey", "Sage", "Charcoal", "Navy", "Terracotta", "Cream", "Mustard",
                   "Green", "Brown", "Oatmeal", "Rust")
WOOD_FINISHES = ("Oak", "Walnut", "Ash", "Natural Oak", "Smoked Oak", "Black Oak", "White", "Black")
LAMP_FINISHES = ("Brass", "Black", "White", "Chrome", "Copper")
PREMIUM_VALUES = frozenset({"Walnut", "Smoked Oak", "Brass", "Copper"})
SIZES: Mapping[str, Tuple[str, ...]] = {
    "sofa": ("Two-seat", "Three-seat", "Corner"),
    "table": ("120 × 70 cm", "160 × 90 cm", "200 × 100 cm", "240 × 100 cm"),
    "desk": ("120 × 60 cm", "140 × 70 cm", "160 × 80 cm"), "textile": ("Small", "Medium", "Large", "Extra large"),
    "bed": ("Single", "Double", "King", "Super king"),
}
# The message mix: (kind, share). "nothing" names nothing the catalog has, or a price nothing is near.
QUERY_KINDS: Tuple[Tuple[str, float], ...] = (
    ("type", 0.25), ("type+colour", 0.22), ("type+material+budget", 0.22), ("colour", 0.11), ("typo", 0.15),
    ("nothing", 0.05),
)
QUERY_FRAMES = ("{}", "{}", "do you have {}?", "show me {}", "I'm looking for {}", "any {}", "{} please",
                "have you got {} in stock")
NOTHING_QUERIES = ("do you sell bicycles?", "a trampoline for the garden", "hi there", "anything in purple?",
                   "a kayak", "something over $50,000", "a surfboard", "anything under $5")
PREFERENCES_SHARE = 1 / 3
FITTING_SHARE = 0.8  # a colour or material the type comes in; the rest any of the catalog's


# ---------------------------------------------------------------------------------------------
# Data


def quiz_names(quiz: Quiz) -> Tuple[List[str], List[str]]:
    """The tags and SKUs the quiz mentions (weights and rules), in a stable order."""
    tags: Dict[str, None] = {}
    skus: Dict[str, None] = {}
    for question in quiz.questions:
        for option in question.options:
            tags.update(dict.fromkeys(option.tag_weights))
            tags.update(dict.fromkeys(sorted(option.rules.exclude_tags | option.rules.require_tags)))
            skus.update(dict.fromkeys(option.product_weights))
    return list(tags), list(skus)


def generate_catalog(count: int, named_skus: Sequence[str] = (), extra_tags: Sequence[str] = (),
                     seed: int = SEED) -> List[ProductRecord]:
    """`count` products from random.Random(seed): a type by share, 1-2 materials, 1-3 use tags, a colour,
    a price log-spread over the type's range; the first products take the SKUs in named_skus, and tags
    no type carries (extra_tags) go on a few products each so every tag the quiz names exists."""
    rng = random.Random(seed)
    shares = [kind[1] for kind in PRODUCT_TYPES]
    products: List[ProductRecord] = []
    known = {tag for kind in PRODUCT_TYPES for tag in kind[3] + kind[4] + kind[5]} | set(COLOURS)
    leftover = [tag for tag in extra_tags if tag not in known]
    for number in range(count):
        name, _share, (low, high), type_tags, materials, uses = rng.choices(PRODUCT_TYPES, weights=shares)[0]
        tags = set(type_tags)
        tags.update(rng.sample(materials, rng.choice((1, 1, 2))))
        tags.update(rng.sample(uses, rng.choice((1, 2, 2, 3))))
        tags.add(rng.choice(COLOURS))
        if leftover and number % 97 == 0:
            tags.add(leftover[(number // 97) % len(leftover)])
        price = math.exp(rng.uniform(math.log(low), math.log(high)))
        # $349-style prices above $50, cents below
        price = Decimal(int(max(10, round(price, -1))) - 1) if price > 50 else Decimal(f"{price:.2f}")
        sku = named_skus[number] if number < len(named_skus) else f"BQ-{name[:2].upper()}-{number:05d}"
        title = f"{rng.choice(ADJECTIVES)} {sorted(tags - set(type_tags))[0]} {name}"
        in_stock = rng.random() >= OUT_OF_STOCK_SHARE
        products.append(ProductRecord(sku, title, price, frozenset(tags), in_stock,
                                      f"https://shop.example/products/{sku.lower()}",
                                      f"https://cdn.example/{sku.lower()}.jpg"))
    return products


def random_answers(quiz: Quiz, rng: random.Random) -> Dict[str, Tuple[str, ...]]:
    """A random walk through the quiz: one option (single), 1-3 (multi), sometimes skipped."""
    answers: Dict[str, Tuple[str, ...]] = {}
    current = quiz.start
    while current != "end":
        question = quiz.question_by_id[current]
        if rng.random() < SKIP_SHARE:
            chosen: Tuple[str, ...] = ()
        elif question.multi:
            chosen = tuple(option.id for option in rng.sample(question.options, rng.randint(1, min(3, len(question.options)))))
        else:
            chosen = (rng.choice(question.options).id,)
        answers[current] = chosen
        current = question.next_after(chosen)
    return answers


def _typo(text: str, rng: random.Random) -> str:
    if len(text) < 5:
        return text
    position = rng.randrange(1, len(text) - 1)
    action = rng.randrange(3)
    if action == 0:
        return text[:position] + text[position + 1:]  # a letter dropped
    if action == 1:
        return text[:position] + text[position] + text[position:]  # doubled
    return text[:position] + rng.choice(string.ascii_lowercase) + text[position + 1:]  # replaced


def typed_answers(quiz: Quiz, count: int, rng: random.Random) -> List[Tuple[str, str]]:
    """(question id, text) as shoppers type them: labels, synonyms, amounts, in a sentence, with typos."""
    samples: List[Tuple[str, str]] = []
    amounts = ("under 100", "$250", "100-300", "over 500", "about $1,200", "no more than 80")
    frames = ("{}", "{}", "something {}", "I'd like {} please", "{} I think")
    for _ in range(count):
        question = rng.choice(quiz.questions)
        if question.is_budget and rng.random() < 0.5:
            text = rng.choice(amounts)
        else:
            option = rng.choice(question.options)
            text = rng.choice((option.label,) + option.synonyms).lower()
            if rng.random() < TYPO_SHARE:
                text = _typo(text, rng)
            text = rng.choice(frames).format(text)
        samples.append((question.id, text))
    return samples


def _price(amount: float) -> Decimal:
    """As generate_catalog: $349-style above $50, cents below."""
    return Decimal(int(max(10, round(amount, -1))) - 1) if amount > 50 else Decimal(f"{amount:.2f}")


def _option_values(kind: str, option: str, first: Optional[str], count: int, rng: random.Random) -> List[str]:
    """`count` distinct values of an option, the product's own colour or material first when it has one."""
    if option == "Colour":
        pool = list(VARIANT_COLOURS)
    elif option == "Finish":
        pool = list(LAMP_FINISHES if kind == "lamp" else WOOD_FINISHES)
    else:
        sizes = SIZES[kind]
        start = rng.randrange(len(sizes) - min(count, len(sizes)) + 1)
        return list(sizes[start:start + count])
    chosen = [first] if first in pool else []
    chosen += rng.sample([value for value in pool if value not in chosen], count - len(chosen))
    return chosen


def catalog_items(products: Sequence[ProductRecord], seed: int = SEED) -> List[CatalogItem]:
    """The generated products as search sees them: a collection by type, and for MULTI_VARIANT_SHARE of
    them 2-4 variants (one option, or two options 2 × 2) — the first takes the product's colour or wood, sizes
    cost 20% more a step, premium finishes 10% more; VARIANT_OUT_OF_STOCK_SHARE of those variants are out of
    stock (all of them when the product is)."""
    rng = random.Random(seed + 1)
    items: List[CatalogItem] = []
    for product in products:
        kind = product.title.rsplit(" ", 1)[-1]
        own_colour = next((tag.title() for tag in sorted(product.tags) if tag in COLOURS), None)
        own_wood = next((tag.title() for tag in sorted(product.tags) if tag.title() in WOOD_FINISHES + LAMP_FINISHES),
                        None)
        variants: List[ItemVariant] = []
        if rng.random() < MULTI_VARIANT_SHARE:
            names = VARIANT_OPTIONS[kind]
            count = rng.choice((2, 2, 3, 4))
            if count == 4 and len(names) == 2 and rng.random() < 0.5:
                first = _option_values(kind, names[0], own_colour if names[0] == "Colour" else own_wood, 2, rng)
                second = _option_values(kind, names[1], own_colour if names[1] == "Colour" else own_wood, 2, rng)
                combinations = [((names[0], a), (names[1], b)) for a in first for b in second]
            else:
                name = rng.choice(names)
                count = min(count, len(SIZES[kind])) if name == "Size" else count
                values = _option_values(kind, name, own_colour if name == "Colour" else own_wood, count, rng)
                combinations = [((name, value),) for value in values]
            for number, options in enumerate(combinations, 1):
                factor = 1.0
                for name, value in options:
                    if name == "Size":
                        factor *= 1 + 0.2 * SIZES[kind].index(value)
                    elif value in PREMIUM_VALUES:
                        factor *= 1.1
                in_stock = product.in_stock and rng.random() >= VARIANT_OUT_OF_STOCK_SHARE
                variants.append(ItemVariant(f"{product.sku}-{number}", " / ".join(value for _, value in options),
                                            options, _price(float(product.price) * factor), in_stock))
        else:
            variants.append(ItemVariant(product.sku, "Default", (), product.price, product.in_stock))
        items.append(CatalogItem(product.sku, product.title, "", product.url, product.image_url, product.tags,
                                 COLLECTIONS.get(kind), tuple(variants)))
    return items


class SearchQuery(NamedTuple):
    kind: str  # of QUERY_KINDS
    text: str
    preferences: Optional[Preferences]


def _round_budget(amount: float) -> int:
    step = 10 if amount < 200 else 50 if amount < 2000 else 100
    return max(step, int(round(amount / step)) * step)


def search_queries(items: Sequence[CatalogItem], vocabulary: SearchVocabulary, count: int,
                   rng: random.Random) -> List[SearchQuery]:
    """Shopper messages made from the catalog's vocabulary (its type tags, colours and materials) in the
    QUERY_KINDS mix: colours and materials mostly (FITTING_SHARE) ones the type comes in, budgets around the
    prices of that type ("under $X", X from 0.6-1.6 × the price of a random product of the type, so some are
    too low); PREFERENCES_SHARE of them with Preferences."""
    types = sorted(vocabulary.type_tags)
    colours = sorted(vocabulary.colours)
    materials = sorted(vocabulary.materials)
    typed = {value: [item for item in items if value in item.tags and item.price is not None] for value in types}
    types = [value for value in types if typed[value]]
    fitting: Dict[Tuple[str, str], List[str]] = {}
    for value in types:
        said = {word for item in typed[value] for word in item.tags} | {
            option.lower() for item in typed[value] for variant in item.variants for _, option in variant.options}
        fitting[value, "colour"] = sorted(said & set(colours)) or colours
        fitting[value, "material"] = sorted(said & set(materials)) or materials
    # Shoppers ask for the main types far more often than for "table-runner".
    weights = [len(typed[value]) for value in types]
    liked_pool = sorted(set(colours) | set(materials) | {"small-space", "modular", "ergonomic", "outdoor"})
    kinds, shares = zip(*QUERY_KINDS)
    queries: List[SearchQuery] = []

    def a_type() -> Tuple[str, str]:
        value = rng.choices(types, weights=weights)[0]
        label = value.replace("-", " ")
        return value, (plural(label) if rng.random() < 0.6 else label)

    def a_word(value: str, kind: str) -> str:
        return rng.choice(fitting[value, kind] if rng.random() < FITTING_SHARE else
                          colours if kind == "colour" else materials)

    def budget(value: str) -> str:
        price = float(rng.choice(typed[value]).price)  # type: ignore[arg-type]
        return f"under ${_round_budget(price * rng.uniform(0.6, 1.6)):,}"

    for _ in range(count):
        kind = rng.choices(kinds, weights=shares)[0]
        if kind == "nothing":
            queries.append(SearchQuery(kind, rng.choice(NOTHING_QUERIES), None))
            continue
        if kind == "typo":
            value, label = a_type()
            extra = a_word(value, rng.choice(("colour", "material")))
            # The typo in the type or in the colour/material word (long enough words only, as the engine).
            if rng.random() < 0.6 and len(label) >= 5:
                label = _typo(label, rng)
            else:
                extra = _typo(extra, rng)
            text = f"{extra} {label}"
        elif kind == "type":
            text = a_type()[1]
        elif kind == "type+colour":
            value, label = a_type()
            text = f"{a_word(value, 'colour')} {label}"
        elif kind == "type+material+budget":
            value, label = a_type()
            text = f"{a_word(value, 'material')} {label} {budget(value)}"
        else:  # colour
            text = rng.choice(("anything in {}?", "something {}", "{} things", "what do you have in {}"))
            text = text.format(rng.choice(colours))
        if kind != "colour":
            text = rng.choice(QUERY_FRAMES).format(text)
        preferences = None
        if rng.random() < PREFERENCES_SHARE:
            previous = rng.choices(types, weights=weights)[0]
            high = _round_budget(float(rng.choice(typed[previous]).price) * rng.uniform(0.8, 2.0))  # type: ignore
            preferences = Preferences(
                max_price=Decimal(high) if rng.random() < 0.7 else None,
                liked_tags=frozenset(rng.sample(liked_pool, rng.randint(1, 3))),
                excluded_tags=frozenset({"leather"}) if rng.random() < 0.2 else frozenset(),
                product_type=previous if rng.random() < 0.5 else None,
            )
        queries.append(SearchQuery(kind, text, preferences))
    return queries


# ---------------------------------------------------------------------------------------------
# Measuring


def timed(label: str, calls: Sequence[Any], run: Callable[[Any], Any], warm_up: int = 0,
          on_result: Optional[Callable[[Any], None]] = None,
          latencies: Optional[List[float]] = None) -> Dict[str, Any]:
    """Run every call once (after warming up on the first `warm_up`), with progress every few seconds;
    the latencies (ms, in call order) also go to `latencies` when given."""
    for call in calls[:warm_up]:
        run(call)
    latencies = [] if latencies is None else latencies
    clock = time.perf_counter
    started = last_report = clock()
    for done, call in enumerate(calls, 1):
        before = clock()
        result = run(call)
        latencies.append((clock() - before) * 1000)
        if on_result is not None:
            on_result(result)
        now = clock()
        if now - last_report >= PROGRESS_EVERY_SECONDS:
            log(f"{label}: {done:,}/{len(calls):,} (p99 so far {percentile(latencies, 0.99):.2f} ms)")
            last_report = now
    return latency_summary(latencies, seconds=clock() - started)


def run(products: int = DEFAULT_PRODUCTS, recommendations: int = DEFAULT_RECOMMENDATIONS,
        index_builds: int = DEFAULT_INDEX_BUILDS, matches: int = DEFAULT_MATCHES, quiz_file: Path = QUIZ_FILE,
        seed: int = SEED, json_path: Optional[Path] = JSON_PATH, searches: int = DEFAULT_SEARCHES,
        search_index_builds: int = DEFAULT_SEARCH_INDEX_BUILDS) -> Dict[str, Any]:
    started = time.perf_counter()
    rng = random.Random(seed)

    # The quiz names tags and SKUs; the generated catalog must carry them for the quiz to load.
    raw = read_yaml_mapping(quiz_file)
    everything = CatalogVocabulary(frozenset(_all_tags(raw)), frozenset(_all_skus(raw)))
    draft = parse_quiz(raw, quiz_file, everything)
    tags, skus = quiz_names(draft)
    log(f"generating {products:,} products (seed {seed})")
    generation_started = time.perf_counter()
    catalog = generate_catalog(products, skus, tags, seed)
    generation_seconds = time.perf_counter() - generation_started
    quiz = load_quiz(quiz_file, CatalogVocabulary.of(catalog))  # the real check, against the generated catalog
    log(f"quiz {quiz.id!r}: {len(quiz.questions)} questions; catalog {len(catalog):,} products "
        f"({sum(not p.in_stock for p in catalog):,} out of stock, {len(CatalogVocabulary.of(catalog).tags)} tags)")

    log(f"index: {index_builds} builds")
    index_stats = timed("index", list(range(index_builds)), lambda _: ProductIndex(catalog))
    index = ProductIndex(catalog)

    answer_sets = [random_answers(quiz, rng) for _ in range(recommendations + WARM_UP)]
    outcome = {"relaxed": 0, "empty": 0, "results": 0}
    relaxed_by: Dict[str, int] = {}
    recommended: Dict[str, int] = {}

    def tally(result: Any) -> None:
        outcome["results"] += len(result.recommendations)
        if not result.recommendations:
            outcome["empty"] += 1
        if result.relaxed:
            outcome["relaxed"] += 1
            key = "+".join(result.relaxed)
            relaxed_by[key] = relaxed_by.get(key, 0) + 1
        for item in result.recommendations[:1]:
            recommended[item.product.sku] = recommended.get(item.product.sku, 0) + 1

    log(f"recommend: {recommendations:,} calls after {WARM_UP} warm-up")
    recommend_stats = timed("recommend", answer_sets[WARM_UP:], lambda answers: recommend(quiz, answers, index),
                            on_result=tally)
    recommend_stats["warm_up"] = WARM_UP
    recommend_stats.update(
        relaxed=outcome["relaxed"], empty=outcome["empty"],
        mean_results=round(outcome["results"] / max(1, recommendations), 2),
        relaxed_by=dict(sorted(relaxed_by.items(), key=lambda item: -item[1])),
        distinct_top_products=len(recommended),
    )

    samples = typed_answers(quiz, matches, rng)
    matched = {"count": 0}

    def match(sample: Tuple[str, str]) -> Tuple[str, ...]:
        return match_options(quiz.question_by_id[sample[0]], sample[1])

    def count_match(found: Tuple[str, ...]) -> None:
        matched["count"] += bool(found)

    log(f"match: {matches:,} typed answers")
    match_stats = timed("match", samples, match, warm_up=min(100, len(samples)), on_result=count_match)
    match_stats["matched"] = matched["count"]

    search_stats, search_index_stats, search_dataset = _search_benchmark(catalog, searches, search_index_builds, seed)

    p99 = recommend_stats["p99_ms"]
    search_p99 = search_stats["p99_ms"]
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(numpy=numpy.__version__),
        "dataset": {
            "seed": seed, "products": products, "in_stock": len(index), "out_of_stock": index.out_of_stock,
            "tags": len(CatalogVocabulary.of(catalog).tags), "quiz": quiz.id, "quiz_file": _shown(quiz_file),
            "generation_seconds": round(generation_seconds, 2), "search": search_dataset,
        },
        "results": {"recommend": recommend_stats, "index": index_stats, "match": match_stats,
                    "search": search_stats, "search_index": search_index_stats},
        "targets": [target(f"recommend p99 ≤ {TARGET_P99_MS:g} ms", p99, TARGET_P99_MS, "ms"),
                    target(f"search p99 ≤ {TARGET_P99_MS:g} ms", search_p99, TARGET_P99_MS, "ms")],
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_json(json_path, report)
    return report


def _search_benchmark(catalog: Sequence[ProductRecord], searches: int, index_builds: int,
                      seed: int) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
    """Catalog search over the generated products: (search stats, CatalogIndex build stats, dataset)."""
    rng = random.Random(seed + 2)
    conversion_started = time.perf_counter()
    items = catalog_items(catalog, seed)
    conversion_seconds = time.perf_counter() - conversion_started
    variants = [variant for item in items for variant in item.variants]
    log(f"search catalog: {len(items):,} items, {len(variants):,} variants "
        f"({sum(len(item.variants) > 1 for item in items):,} items with several, "
        f"{sum(not variant.in_stock for variant in variants):,} variants out of stock)")

    log(f"search_index: {index_builds} builds")
    index_stats = timed("search_index", list(range(index_builds)), lambda _: CatalogIndex(items))
    index = CatalogIndex(items)
    vocabulary = index.vocabulary

    queries = search_queries(items, vocabulary, searches, rng)
    outcomes = ("exact", "relaxed", "empty", "not_understood")
    totals: Dict[str, int] = dict.fromkeys(outcomes, 0)
    by_kind: Dict[str, Dict[str, int]] = {}
    relaxed_by: Dict[str, int] = {}
    extra = {"results": 0, "unknown": 0, "other_variant": 0, "with_preferences": 0}
    results: List[Tuple[SearchQuery, SearchResult]] = []

    def one(query: SearchQuery) -> Tuple[SearchQuery, SearchResult]:
        return query, search(criteria_from(query.text, {}, vocabulary), index, query.preferences)

    def tally(outcome: Tuple[SearchQuery, SearchResult]) -> None:
        query, result = outcome
        if not result.understood:
            key = "not_understood"
        elif not result.matches:
            key = "empty"
        elif result.relaxed:
            key = "relaxed"
            relaxed = "+".join(result.relaxed)
            relaxed_by[relaxed] = relaxed_by.get(relaxed, 0) + 1
        else:
            key = "exact"
        totals[key] += 1
        row = by_kind.setdefault(query.kind, {"count": 0, **dict.fromkeys(outcomes, 0)})
        row["count"] += 1
        row[key] += 1
        extra["results"] += len(result.matches)
        extra["unknown"] += bool(result.unknown)
        extra["with_preferences"] += query.preferences is not None
        # The variant chosen is not the product's first one (a colour, finish or size was picked).
        extra["other_variant"] += sum(match.variant != match.item.variants[0] for match in result.matches)
        results.append(outcome)

    latencies: List[float] = []
    warm_up = min(SEARCH_WARM_UP, len(queries))
    log(f"search: {searches:,} messages after {warm_up} warm-up")
    stats = timed("search", queries, one, warm_up=warm_up, on_result=tally, latencies=latencies)
    stats["warm_up"] = warm_up
    slowest = max(range(len(latencies)), key=latencies.__getitem__) if latencies else None
    kind_latencies: Dict[str, List[float]] = {}
    for query, latency in zip(queries, latencies):
        kind_latencies.setdefault(query.kind, []).append(latency)
    for kind, row in by_kind.items():
        row["p50_ms"] = round(percentile(kind_latencies[kind], 0.50) or 0.0, 3)
        row["p99_ms"] = round(percentile(kind_latencies[kind], 0.99) or 0.0, 3)
    stats.update(
        **totals,
        with_preferences=extra["with_preferences"], with_unknown_value=extra["unknown"],
        mean_results=round(extra["results"] / max(1, searches), 2),
        other_variant_matches=extra["other_variant"], matches=extra["results"],
        relaxed_by=dict(sorted(relaxed_by.items(), key=lambda item: -item[1])),
        by_kind={kind: by_kind[kind] for kind, _ in QUERY_KINDS if kind in by_kind},
        slowest_message=None if slowest is None else queries[slowest].text,
    )
    dataset = {
        "items": len(items), "in_stock": len(index), "variants": len(variants),
        "multi_variant_items": sum(len(item.variants) > 1 for item in items),
        "variants_out_of_stock": sum(not variant.in_stock for variant in variants),
        "types": len(vocabulary.types), "colours": len(vocabulary.colours), "materials": len(vocabulary.materials),
        "conversion_seconds": round(conversion_seconds, 2),
    }
    return stats, index_stats, dataset


def _all_tags(raw: Mapping[str, Any]) -> List[str]:
    """Every tag-looking name in a raw quiz mapping (a first pass, so the quiz parses before the catalog exists)."""
    found: List[str] = list(raw.get("known_tags") or [])
    for question in raw.get("questions") or []:
        for option in (question or {}).get("options") or []:
            found.extend(((option.get("weights") or {}).get("tags") or {}).keys())
            rules = option.get("rules") or {}
            found.extend(rules.get("exclude_tags") or [])
            found.extend(rules.get("require_tags") or [])
    return [str(tag) for tag in found]


def _all_skus(raw: Mapping[str, Any]) -> List[str]:
    found: List[str] = []
    for question in raw.get("questions") or []:
        for option in (question or {}).get("options") or []:
            found.extend(((option.get("weights") or {}).get("products") or {}).keys())
    return [str(sku) for sku in found]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def format_report(report: Mapping[str, Any]) -> str:
    machine, dataset, results = report["machine"], report["dataset"], report["results"]
    lines = [
        f"Quiz benchmark — {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, numpy {machine['numpy']}",
        f"Catalog: {dataset['products']:,} generated products (seed {dataset['seed']}), {dataset['in_stock']:,} in stock, "
        f"{dataset['tags']} tags; quiz {dataset['quiz']!r} ({dataset['quiz_file']})",
        "",
        f"Search: {dataset['search']['items']:,} items, {dataset['search']['variants']:,} variants "
        f"({dataset['search']['multi_variant_items']:,} items with several, "
        f"{dataset['search']['variants_out_of_stock']:,} out of stock), {dataset['search']['in_stock']:,} in stock",
        "",
        f"  {'operation':<12} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'calls/s':>9}",
    ]
    for name, stats in results.items():
        lines.append(
            f"  {name:<12} {stats['count']:>7,} {stats['p50_ms']:>8.3f} {stats['p95_ms']:>8.3f} {stats['p99_ms']:>8.3f} "
            f"{stats['max_ms']:>8.3f} {stats['per_second']:>9,.0f}"
        )
    rec = results["recommend"]
    lines.append("")
    lines.append(f"  recommendations: {rec['mean_results']} products on average; {rec['relaxed']:,} needed a relaxation "
                 f"({', '.join(f'{key} {value:,}' for key, value in rec['relaxed_by'].items()) or 'none'}); "
                 f"{rec['empty']:,} found nothing; {rec['distinct_top_products']:,} distinct first picks")
    match = results["match"]
    lines.append(f"  typed answers: {match['matched']:,} of {match['count']:,} matched an option")
    found = results["search"]
    lines.append(f"  searches: {found['exact']:,} matched everything asked, {found['relaxed']:,} needed a relaxation "
                 f"({', '.join(f'{key} {value:,}' for key, value in found['relaxed_by'].items()) or 'none'}), "
                 f"{found['empty']:,} found nothing, {found['not_understood']:,} not understood; "
                 f"{found['with_preferences']:,} with preferences; {found['mean_results']} products on average, "
                 f"{found['other_variant_matches']:,} of {found['matches']:,} in a variant other than the first")
    for kind, row in found["by_kind"].items():
        lines.append(f"    {kind:<22} {row['count']:>6,}  exact {row['exact']:>5,}  relaxed {row['relaxed']:>5,}  "
                     f"empty {row['empty']:>4,}  not understood {row['not_understood']:>4,}  "
                     f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms")
    lines.append("")
    lines.append("Targets")
    for row in report["targets"]:
        lines.append(f"  {row['target']:<28} {row['value']:>8.3f} {row['unit']}  {row['result']}")
    lines.append(f"\ntotal time {report['total_seconds']:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quiz",
        description="Time quiz recommendations (scoring, filtering, ranking, reasons) and catalog search over a "
                    "generated catalog.",
    )
    parser.add_argument("--products", type=int, default=DEFAULT_PRODUCTS, metavar="N",
                        help=f"products to generate (default: {DEFAULT_PRODUCTS:,})")
    parser.add_argument("--recommendations", type=int, default=DEFAULT_RECOMMENDATIONS, metavar="N",
                        help=f"recommendations measured (default: {DEFAULT_RECOMMENDATIONS:,})")
    parser.add_argument("--index-builds", type=int, default=DEFAULT_INDEX_BUILDS, metavar="N",
                        help=f"ProductIndex builds measured (default: {DEFAULT_INDEX_BUILDS})")
    parser.add_argument("--matches", type=int, default=DEFAULT_MATCHES, metavar="N",
                        help=f"typed answers matched (default: {DEFAULT_MATCHES:,})")
    parser.add_argument("--searches", type=int, default=DEFAULT_SEARCHES, metavar="N",
                        help=f"catalog searches measured (default: {DEFAULT_SEARCHES:,})")
    parser.add_argument("--search-index-builds", type=int, default=DEFAULT_SEARCH_INDEX_BUILDS, metavar="N",
                        help=f"CatalogIndex builds measured (default: {DEFAULT_SEARCH_INDEX_BUILDS})")
    parser.add_argument("--quiz", type=Path, default=QUIZ_FILE, metavar="PATH",
                        help=f"quiz definition (default: {QUIZ_FILE.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default: {SEED})")
    parser.add_argument("--json", type=Path, default=JSON_PATH, metavar="PATH",
                        help=f"where to write the results (default: {JSON_PATH.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.products, args.recommendations, args.index_builds, args.matches, args.searches,
           args.search_index_builds) < 1:
        parser.error("--products, --recommendations, --index-builds, --matches, --searches and "
                     "--search-index-builds must be at least 1")
    report = run(args.products, args.recommendations, args.index_builds, args.matches, args.quiz, args.seed, args.json,
                 searches=args.searches, search_index_builds=args.search_index_builds)
    return finish(report, format_report(report), args.json, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
