"""Server-rendered SVG charts for the console: small pure functions from numbers to inline SVG markup.

No JavaScript and no external assets (the console's CSP allows neither inline scripts nor inline styles):
colours come from classes styled in bot/console/static/overview.css. Every piece of text reaches the
markup as an argument of Markup.format, which passes it through markupsafe.escape — labels carry
shopper-influenced words (topics, channels, product titles) — and class names and ids are reduced to
[a-z0-9_-]. Each chart names itself in <title> and describes its data in <desc> (referenced by
aria-labelledby), and each data point carries a <title> tooltip; pages still put a table of the exact
numbers beside each chart. A chart without data is a short "empty" paragraph instead of an empty frame.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from markupsafe import Markup

ValueFormat = Callable[[float], str]

WIDTH = 640
MAX_LABEL_CHARS = 22  # category labels beside horizontal bars; the full text stays in the tooltip
_UNSAFE_NAME = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Bar:
    """One bar of `bar_chart`; `css_class` picks its colour (overview.css: low, middle, high, …)."""

    label: str
    value: float
    css_class: str = ""


@dataclass(frozen=True)
class Series:
    """One stacked segment kind of `stacked_bars`: a value per category, in the categories' order."""

    name: str
    values: Sequence[float]
    css_class: str = ""


def _name(value: str) -> str:
    """A class name or id that cannot break out of its attribute or select anything unexpected."""
    return _UNSAFE_NAME.sub("-", str(value).lower()).strip("-") or "x"


def _classes(*names: str) -> str:
    return " ".join(_name(name) for name in names if name)


def _num(value: float) -> str:
    """Coordinates with at most one decimal: short markup, no float noise."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _empty(message: str) -> Markup:
    return Markup('<p class="chart-empty muted">{}</p>').format(message)


def _open_svg(chart_id: str, css_class: str, height: float, title: str, description: str) -> List[Markup]:
    base = _name(chart_id)
    return [
        Markup('<svg class="{}" viewBox="0 0 {} {}" role="img" aria-labelledby="{} {}" '
               'xmlns="http://www.w3.org/2000/svg">').format(
            _classes("chart", css_class), WIDTH, _num(height), f"{base}-title", f"{base}-desc"),
        Markup('<title id="{}">{}</title>').format(f"{base}-title", title),
        Markup('<desc id="{}">{}</desc>').format(f"{base}-desc", description),
    ]


def _scale(value: float, low: float, high: float, top: float, height: float) -> float:
    """The y coordinate of `value` on an axis from `low` (bottom) to `high` (top), clamped to the axis."""
    span = (high - low) or 1.0
    clamped = min(max(value, low), high)
    return top + (high - clamped) / span * height


def ticks(low: float, high: float, count: int = 4) -> List[float]:
    """Evenly spaced axis values from low to high, both included (count intervals)."""
    if count < 1 or high <= low:
        return [low]
    step = (high - low) / count
    return [low + step * index for index in range(count + 1)]


def _label_every(count: int, room: int) -> int:
    """Show every n-th x label so that at most `room` fit."""
    return max(1, math.ceil(count / max(room, 1)))


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[Optional[float]],
    counts: Sequence[int],
    y_min: float,
    y_max: float,
    empty: str,
    value_format: ValueFormat = _plain,
    min_sample: int = 5,
    css_class: str = "",
) -> Markup:
    """A line over time (one point per bucket; None = no answers, a gap in the line), with the number of
    answers behind each point drawn as small bars underneath: a point resting on fewer than `min_sample`
    answers is drawn hollow, so a small sample is not over-read."""
    if len(labels) != len(values) or len(labels) != len(counts):
        raise ValueError("labels, values and counts must have the same length")
    if y_max <= y_min:
        raise ValueError("y_max must be above y_min")
    if not labels or all(value is None for value in values):
        return _empty(empty)

    left, right, top, plot_height = 46.0, 12.0, 12.0, 150.0
    band_top, band_height = top + plot_height + 22.0, 34.0
    label_y = band_top + band_height + 16.0
    height = label_y + 8.0
    plot_width = WIDTH - left - right
    step = plot_width / len(labels)
    xs = [left + (index + 0.5) * step for index in range(len(labels))]

    parts = _open_svg(chart_id, css_class or "line-chart", height, title, description)
    for tick in ticks(y_min, y_max):
        y = _scale(tick, y_min, y_max, top, plot_height)
        parts.append(Markup('<line class="{}" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(
            "grid zero" if tick == 0 and y_min < 0 else "grid", _num(left), _num(WIDTH - right), _num(y), _num(y)))
        parts.append(Markup('<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>').format(
            _num(left - 6), _num(y + 4), value_format(tick)))

    # The line, broken where a bucket has no answers.
    path: List[str] = []
    previous = False
    for x, value in zip(xs, values):
        if value is None:
            previous = False
            continue
        y = _scale(value, y_min, y_max, top, plot_height)
        path.append(f"{'L' if previous else 'M'}{_num(x)} {_num(y)}")
        previous = True
    parts.append(Markup('<path class="line" d="{}"/>').format(" ".join(path)))

    most = max(max(counts), 1)
    parts.append(Markup('<text class="axis" x="{}" y="{}" text-anchor="end">n</text>').format(
        _num(left - 6), _num(band_top + band_height / 2 + 4)))
    parts.append(Markup('<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>').format(
        _num(WIDTH - right), _num(band_top - 4), f"max {most:,}"))
    bar_width = max(min(step * 0.6, 28.0), 1.0)
    every = _label_every(len(labels), 10)
    for index, (x, label, value, count) in enumerate(zip(xs, labels, values, counts)):
        answers = f"{count:,} answer{'s' if count != 1 else ''}"
        tooltip = f"{label}: " + ("no answers" if value is None else f"{value_format(value)} from {answers}")
        if count:
            bar = max(count / most * band_height, 1.0)
            parts.append(Markup('<rect class="count" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>')
                         .format(_num(x - bar_width / 2), _num(band_top + band_height - bar), _num(bar_width),
                                 _num(bar), tooltip))
        if value is not None:
            y = _scale(value, y_min, y_max, top, plot_height)
            point_class = "point small-sample" if count < min_sample else "point"
            parts.append(Markup('<circle class="{}" cx="{}" cy="{}" r="4"><title>{}</title></circle>').format(
                point_class, _num(x), _num(y), tooltip))
        if index % every == 0:
            parts.append(Markup('<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                _num(x), _num(label_y), _cut(label, 12)))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    bars: Sequence[Bar],
    empty: str,
    value_format: ValueFormat = _plain,
    css_class: str = "",
) -> Markup:
    """Vertical bars from zero, each with its value above it and its label below."""
    if not bars or all(bar.value <= 0 for bar in bars):
        return _empty(empty)
    left, right, top, plot_height = 12.0, 12.0, 18.0, 150.0
    label_y = top + plot_height + 16.0
    height = label_y + 8.0
    plot_width = WIDTH - left - right
    step = plot_width / len(bars)
    width = max(min(step * 0.7, 60.0), 1.0)
    high = max(bar.value for bar in bars)
    baseline = top + plot_height

    parts = _open_svg(chart_id, css_class or "bar-chart", height, title, description)
    parts.append(Markup('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(
        _num(left), _num(WIDTH - right), _num(baseline), _num(baseline)))
    for index, bar in enumerate(bars):
        x = left + (index + 0.5) * step
        value = max(bar.value, 0.0)
        bar_height = value / high * plot_height
        tooltip = f"{bar.label}: {value_format(bar.value)}"
        parts.append(Markup('<g class="{}"><title>{}</title>').format(_classes("bar", bar.css_class), tooltip))
        if bar_height > 0:
            parts.append(Markup('<rect x="{}" y="{}" width="{}" height="{}"/>').format(
                _num(x - width / 2), _num(baseline - bar_height), _num(width), _num(max(bar_height, 1.0))))
        parts.append(Markup('<text class="value" x="{}" y="{}" text-anchor="middle">{}</text>').format(
            _num(x), _num(baseline - bar_height - 4), value_format(bar.value)))
        parts.append(Markup('<text class="label" x="{}" y="{}" text-anchor="middle">{}</text></g>').format(
            _num(x), _num(label_y), _cut(bar.label, 14)))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    empty: str,
    value_format: ValueFormat = _plain,
    css_class: str = "",
) -> Markup:
    """Horizontal bars, one per category, each split into the series' segments (stacked left to right),
    with the total at the end and a legend of the series on top."""
    for one in series:
        if len(one.values) != len(categories):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(categories)} categories")
    totals = [sum(max(one.values[index], 0.0) for one in series) for index in range(len(categories))]
    if not categories or not series or all(total <= 0 for total in totals):
        return _empty(empty)
    label_width, right, legend_height, row_height = 150.0, 56.0, 26.0, 26.0
    bar_left = label_width + 8.0
    plot_width = WIDTH - bar_left - right
    height = legend_height + row_height * len(categories) + 6.0
    high = max(totals)

    parts = _open_svg(chart_id, css_class or "stacked-bars", height, title, description)
    x = bar_left
    for one in series:
        parts.append(Markup('<g class="{}"><rect x="{}" y="6" width="12" height="12"/>'
                            '<text class="legend" x="{}" y="16">{}</text></g>').format(
            _classes("segment", one.css_class), _num(x), _num(x + 16), _cut(one.name, 20)))
        x += 22 + 7.5 * min(len(one.name), 20)
    for row, (category, total) in enumerate(zip(categories, totals)):
        y = legend_height + row * row_height
        parts.append(Markup('<text class="label" x="{}" y="{}" text-anchor="end">{}<title>{}</title></text>').format(
            _num(label_width), _num(y + 16), _cut(category, MAX_LABEL_CHARS), category))
        x = bar_left
        for one in series:
            value = max(one.values[row], 0.0)
            if value <= 0:
                continue
            width = value / high * plot_width
            parts.append(Markup('<rect class="{}" x="{}" y="{}" width="{}" height="18"><title>{}</title></rect>')
                         .format(_classes("segment", one.css_class), _num(x), _num(y + 3), _num(max(width, 1.0)),
                                 f"{category}, {one.name}: {value_format(value)}"))
            x += width
        parts.append(Markup('<text class="value" x="{}" y="{}">{}</text>').format(
            _num(x + 6), _num(y + 16), value_format(total)))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
