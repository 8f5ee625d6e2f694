"""Quiz recommendations at catalog scale: scoring and ranking latency of the quiz engine.

`make bench-quiz` (python -m bench.quiz) generates, from random.Random(42), a catalog of 10,000
products (furniture and home types with realistic tags and log-spread prices per type, about 8% out
of stock; the SKUs the quiz weights are among them), loads the demo quiz (data/quizzes/room-makeover.yml)
against that catalog's tags and SKUs, and times:

  recommend   bot.quiz.recommend() over a prebuilt ProductIndex, one random answer set per call
              (a random path through the branches, 1-3 options at multi-choice questions, ~10% of
              questions skipped), after a warm-up                                (default 10,000 calls)
  index       ProductIndex(products): what a catalog change costs (the conversation keeps the index
              until the catalog changes)                                         (default 20 builds)
  match       bot.quiz.match_options() of a typed answer (a label, synonym or budget amount, one in
              three with a typo)                                                 (default 5,000 calls)

Each call is timed with perf_counter. It prints p50/p95/p99/max and calls/s per operation, how many
recommendations needed a relaxation (no exact match) or found nothing, and PASS/MISS against the
target (recommend p99 ≤ 20 ms); the results also go to var/bench/quiz.json. Exit code 1 with --check
when the target is missed.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import string
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy

from bench.chat import machine_info, percentile
from bot.config_files import read_yaml_mapping
from bot.quiz import (
    CatalogVocabulary, ProductIndex, ProductRecord, Quiz, load_quiz, match_options, parse_quiz, recommend,
)
from bot.settings import PROJECT_ROOT

SEED = 42
DEFAULT_PRODUCTS = 10_000
DEFAULT_RECOMMENDATIONS = 10_000
DEFAULT_INDEX_BUILDS = 20
DEFAULT_MATCHES = 5_000
WARM_UP = 200
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


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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


# ---------------------------------------------------------------------------------------------
# Measuring


def _stats(latencies_ms: Sequence[float], seconds: float) -> Dict[str, Any]:
    def rounded(value: Optional[float], places: int = 3) -> Optional[float]:
        return None if value is None else round(value, places)

    return {
        "count": len(latencies_ms),
        "p50_ms": rounded(percentile(latencies_ms, 0.50)),
        "p95_ms": rounded(percentile(latencies_ms, 0.95)),
        "p99_ms": rounded(percentile(latencies_ms, 0.99)),
        "max_ms": rounded(max(latencies_ms) if latencies_ms else None),
        "mean_ms": rounded(sum(latencies_ms) / len(latencies_ms) if latencies_ms else None),
        "per_second": round(len(latencies_ms) / seconds, 1) if seconds > 0 else None,
    }


def timed(label: str, calls: Sequence[Any], run: Callable[[Any], Any], warm_up: int = 0,
          on_result: Optional[Callable[[Any], None]] = None) -> Dict[str, Any]:
    """Run every call once (after warming up on the first `warm_up`), with progress every few seconds."""
    for call in calls[:warm_up]:
        run(call)
    latencies: List[float] = []
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
    return _stats(latencies, clock() - started)


def run(products: int = DEFAULT_PRODUCTS, recommendations: int = DEFAULT_RECOMMENDATIONS,
        index_builds: int = DEFAULT_INDEX_BUILDS, matches: int = DEFAULT_MATCHES, quiz_file: Path = QUIZ_FILE,
        seed: int = SEED, json_path: Optional[Path] = JSON_PATH) -> Dict[str, Any]:
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

    p99 = recommend_stats["p99_ms"]
    report = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "dataset": {
            "seed": seed, "products": products, "in_stock": len(index), "out_of_stock": index.out_of_stock,
            "tags": len(CatalogVocabulary.of(catalog).tags), "quiz": quiz.id, "quiz_file": _shown(quiz_file),
            "generation_seconds": round(generation_seconds, 2),
        },
        "results": {"recommend": recommend_stats, "index": index_stats, "match": match_stats},
        "targets": [{
            "target": f"recommend p99 ≤ {TARGET_P99_MS:g} ms", "value": p99, "unit": "ms",
            "result": "PASS" if p99 is not None and p99 <= TARGET_P99_MS else "MISS",
        }],
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


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


def machine_description() -> Dict[str, Any]:
    machine = dict(machine_info())
    for key in ("rasa", "rasa_sdk", "aiohttp"):
        machine.pop(key, None)
    machine["numpy"] = numpy.__version__
    return machine


def format_report(report: Mapping[str, Any]) -> str:
    machine, dataset, results = report["machine"], report["dataset"], report["results"]
    lines = [
        f"Quiz benchmark — {machine['nproc']} cores ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, numpy {machine['numpy']}",
        f"Catalog: {dataset['products']:,} generated products (seed {dataset['seed']}), {dataset['in_stock']:,} in stock, "
        f"{dataset['tags']} tags; quiz {dataset['quiz']!r} ({dataset['quiz_file']})",
        "",
        f"  {'operation':<10} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'calls/s':>9}",
    ]
    for name, stats in results.items():
        lines.append(
            f"  {name:<10} {stats['count']:>7,} {stats['p50_ms']:>8.3f} {stats['p95_ms']:>8.3f} {stats['p99_ms']:>8.3f} "
            f"{stats['max_ms']:>8.3f} {stats['per_second']:>9,.0f}"
        )
    rec = results["recommend"]
    lines.append("")
    lines.append(f"  recommendations: {rec['mean_results']} products on average; {rec['relaxed']:,} needed a relaxation "
                 f"({', '.join(f'{key} {value:,}' for key, value in rec['relaxed_by'].items()) or 'none'}); "
                 f"{rec['empty']:,} found nothing; {rec['distinct_top_products']:,} distinct first picks")
    match = results["match"]
    lines.append(f"  typed answers: {match['matched']:,} of {match['count']:,} matched an option")
    lines.append("")
    lines.append("Targets")
    for row in report["targets"]:
        lines.append(f"  {row['target']:<28} {row['value']:>8.3f} {row['unit']}  {row['result']}")
    lines.append(f"\ntotal time {report['total_seconds']:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quiz",
        description="Time quiz recommendations (scoring, filtering, ranking, reasons) over a generated catalog.",
    )
    parser.add_argument("--products", type=int, default=DEFAULT_PRODUCTS, metavar="N",
                        help=f"products to generate (default: {DEFAULT_PRODUCTS:,})")
    parser.add_argument("--recommendations", type=int, default=DEFAULT_RECOMMENDATIONS, metavar="N",
                        help=f"recommendations measured (default: {DEFAULT_RECOMMENDATIONS:,})")
    parser.add_argument("--index-builds", type=int, default=DEFAULT_INDEX_BUILDS, metavar="N",
                        help=f"ProductIndex builds measured (default: {DEFAULT_INDEX_BUILDS})")
    parser.add_argument("--matches", type=int, default=DEFAULT_MATCHES, metavar="N",
                        help=f"typed answers matched (default: {DEFAULT_MATCHES:,})")
    parser.add_argument("--quiz", type=Path, default=QUIZ_FILE, metavar="PATH",
                        help=f"quiz definition (default: {QUIZ_FILE.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default: {SEED})")
    parser.add_argument("--json", type=Path, default=JSON_PATH, metavar="PATH",
                        help=f"where to write the results (default: {JSON_PATH.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.products, args.recommendations, args.index_builds, args.matches) < 1:
        parser.error("--products, --recommendations, --index-builds and --matches must be at least 1")
    report = run(args.products, args.recommendations, args.index_builds, args.matches, args.quiz, args.seed, args.json)
    print(format_report(report), flush=True)
    if args.json is not None:
        log(f"results written to {args.json}")
    missed = [row for row in report["targets"] if row["result"] == "MISS"]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
