"""The console's SVG charts (bot/console/charts.py): escaping of every label, empty states, a single point,
gaps, small samples and the scaling of values to coordinates. Each chart is parsed as XML, so a broken tag
or attribute fails the test as it would break the page."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import List

import pytest
from markupsafe import Markup

from bot.console.charts import Bar, Series, bar_chart, line_chart, stacked_bars, ticks

SVG = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>'


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    return ET.fromstring(str(markup))


def line(**overrides: object) -> Markup:
    arguments = dict(chart_id="csat", title="CSAT", description="CSAT by week", labels=["a", "b", "c"],
                     values=[100.0, 50.0, 0.0], counts=[10, 10, 10], y_min=0, y_max=100, empty="No CSAT answers")
    arguments.update(overrides)
    return line_chart(**arguments)  # type: ignore[arg-type]


def circles(root: ET.Element) -> List[ET.Element]:
    return root.findall(f".//{SVG}circle")


def test_every_label_title_and_description_is_escaped() -> None:
    charts = [
        line(title=EVIL, description=EVIL, labels=[EVIL, "b"], values=[1.0, 2.0], counts=[1, 2]),
        bar_chart(chart_id="x", title=EVIL, description=EVIL, bars=[Bar(EVIL, 3)], empty=EVIL),
        stacked_bars(chart_id="x", title=EVIL, description=EVIL, categories=[EVIL],
                     series=[Series(EVIL, [2]), Series("ok", [1])], empty=EVIL),
    ]
    for chart in charts:
        text = str(chart)
        assert "<script" not in text and "&lt;script&gt;" in text
        root = parse(chart)
        assert root.find(f"{SVG}title").text == EVIL  # the parser reads back exactly the text given
        assert root.find(f"{SVG}desc").text == EVIL


def test_ids_and_classes_cannot_break_out_of_their_attributes() -> None:
    chart = bar_chart(chart_id='a" onload="alert(1)', title="t", description="d", empty="none",
                      bars=[Bar("one", 1, 'x" onclick="evil()')])
    text = str(chart)
    assert 'onclick="' not in text and 'onload="' not in text
    root = parse(chart)
    assert set(root.attrib) == {"class", "viewBox", "role", "aria-labelledby"}
    title_id = root.find(f"{SVG}title").get("id")
    assert title_id in root.get("aria-labelledby").split() and all(char.isalnum() or char == "-" for char in title_id)


def test_empty_data_gives_an_empty_state_message_not_an_empty_frame() -> None:
    for chart in (
        line(labels=[], values=[], counts=[]),
        line(values=[None, None, None], counts=[0, 0, 0]),
        bar_chart(chart_id="x", title="t", description="d", bars=[Bar("1", 0), Bar("2", 0)], empty="No CSAT answers"),
        bar_chart(chart_id="x", title="t", description="d", bars=[], empty="No CSAT answers"),
        stacked_bars(chart_id="x", title="t", description="d", categories=["shipping"], series=[Series("p", [0])],
                     empty="No CSAT answers"),
    ):
        assert "<svg" not in chart and "No CSAT answers" in chart and 'class="chart-empty' in chart
    assert "&lt;b&gt;" in bar_chart(chart_id="x", title="t", description="d", bars=[], empty="<b>")


def test_a_single_point_sits_in_the_middle_and_the_line_is_one_move() -> None:
    root = parse(line(labels=["only"], values=[50.0], counts=[7]))
    [point] = circles(root)
    viewbox_width = float(root.get("viewBox").split()[2])
    plot_left, plot_right = 46.0, viewbox_width - 12.0
    assert float(point.get("cx")) == pytest.approx((plot_left + plot_right) / 2, abs=0.1)
    assert root.find(f".//{SVG}path").get("d").startswith("M") and "L" not in root.find(f".//{SVG}path").get("d")
    assert point.find(f"{SVG}title").text == "only: 50 from 7 answers"


def test_values_are_scaled_between_the_axis_ends_and_clamped() -> None:
    root = parse(line(values=[100.0, 50.0, 0.0]))
    ys = [float(point.get("cy")) for point in circles(root)]
    top, bottom = 12.0, 162.0  # the plot area of line_chart
    assert ys == pytest.approx([top, (top + bottom) / 2, bottom], abs=0.1)
    nps = parse(line(values=[-100.0, 0.0, 250.0], y_min=-100, y_max=100))
    ys = [float(point.get("cy")) for point in circles(nps)]
    assert ys == pytest.approx([bottom, (top + bottom) / 2, top], abs=0.1)  # 250 is drawn at the top, not beyond
    assert nps.find(f".//{SVG}line[@class='grid zero']") is not None


def test_a_bucket_without_answers_breaks_the_line_and_small_samples_are_hollow() -> None:
    root = parse(line(labels=["a", "b", "c", "d"], values=[80.0, None, 60.0, 70.0], counts=[12, 0, 2, 30],
                      min_sample=5))
    assert root.find(f".//{SVG}path").get("d").count("M") == 2
    classes = [point.get("class") for point in circles(root)]
    assert classes == ["point", "point small-sample", "point"]
    counts = root.findall(f".//{SVG}rect[@class='count']")
    heights = [float(rect.get("height")) for rect in counts]
    assert len(counts) == 3 and heights[2] == max(heights) and heights[1] == pytest.approx(heights[2] * 2 / 30, abs=0.1)
    assert [rect.find(f"{SVG}title").text for rect in counts][1] == "c: 60 from 2 answers"


def test_bars_are_proportional_to_their_values() -> None:
    root = parse(bar_chart(chart_id="x", title="t", description="d", empty="none",
                           bars=[Bar("1", 10, "low"), Bar("2", 5, "middle"), Bar("3", 0, "high")]))
    groups = root.findall(f"{SVG}g")
    assert [group.get("class") for group in groups] == ["bar low", "bar middle", "bar high"]
    heights = [float(group.find(f"{SVG}rect").get("height")) for group in groups[:2]]
    assert heights == pytest.approx([150.0, 75.0], abs=0.1)
    assert groups[2].find(f"{SVG}rect") is None  # zero draws no bar, but keeps its label and value
    assert [group.find(f"{SVG}text[@class='value']").text for group in groups] == ["10", "5", "0"]


def test_stacked_segments_add_up_to_the_longest_bar() -> None:
    root = parse(stacked_bars(chart_id="x", title="t", description="d", empty="none", categories=["shipping", "price"],
                              series=[Series("positive", [2, 1], "positive"), Series("negative", [6, 0], "negative")]))
    segments = root.findall(f"{SVG}rect[@class]")
    by_title = {rect.find(f"{SVG}title").text: float(rect.get("width")) for rect in segments}
    assert set(by_title) == {"shipping, positive: 2", "shipping, negative: 6", "price, positive: 1"}
    full = by_title["shipping, positive: 2"] + by_title["shipping, negative: 6"]
    assert by_title["price, positive: 1"] == pytest.approx(full / 8, abs=0.1)
    totals = [text.text for text in root.findall(f"{SVG}text[@class='value']")]
    assert totals == ["8", "1"]


def test_a_long_category_is_cut_on_the_chart_but_whole_in_its_tooltip() -> None:
    name = "a topic with a very long name indeed"
    root = parse(stacked_bars(chart_id="x", title="t", description="d", empty="none", categories=[name],
                              series=[Series("positive", [1])]))
    label = root.find(f"{SVG}text[@class='label']")
    assert label.text.endswith("…") and len(label.text) <= 22 and label.find(f"{SVG}title").text == name


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        line(labels=["a"], values=[1.0, 2.0], counts=[1, 1])
    with pytest.raises(ValueError):
        line(y_min=10, y_max=10)
    with pytest.raises(ValueError):
        stacked_bars(chart_id="x", title="t", description="d", empty="e", categories=["a", "b"],
                     series=[Series("s", [1])])


def test_axis_helpers() -> None:
    assert ticks(-100, 100) == [-100, -50, 0, 50, 100]
    assert ticks(0, 100) == [0, 25, 50, 75, 100]
