"""`python -m bot segments …` and `predict scores --segment` against a real SQLite store: a segment as an
argument (built-in key, saved id or name, inline JSON), counts, members as CSV and JSON, save and delete."""
from __future__ import annotations

import csv
import io
import json

from bot.cli import main
from bot.db import get_database
from tests.unit.test_segments import build_store


def _run(capsys, *argv: str) -> tuple:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_segment_is_an_argument(environment, capsys, clock, tmp_path) -> None:
    assert main(["db", "upgrade"]) == 0
    store = build_store(get_database())
    capsys.readouterr()

    code, out, err = _run(capsys, "segments", "list")
    assert code == 0
    assert out.splitlines()[0].startswith("vips_at_risk")
    assert "Detractors  (built-in): last NPS unhappy" in out
    assert "5 segments" in err

    assert _run(capsys, "segments", "count", "detractors")[1] == "1\n"
    code, out, err = _run(capsys, "segments", "count", '[{"kind": "frequency", "min": 1, "max": 1}]')
    assert (code, out) == (0, "2\n") and "2 customers: 1 order (counted in" in err

    code, out, _ = _run(capsys, "segments", "members", "vips_at_risk")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(row["id"], row["email"], row["tier"], row["reason"]) for row in rows] == [
        (str(store["vip"]), "vip@example.com", "Gold", "Gold tier; spent 1,000.00; 22 % likely (was 61 %)")]
    assert rows[0]["probability"] == "0.2200" and rows[0]["lifetime_spend"] == "1000.00"

    filter_file = tmp_path / "loyal.json"
    filter_file.write_text('{"conditions": [{"kind": "frequency", "min": 2}]}')
    code, out, _ = _run(capsys, "segments", "save", "Loyal ones", "--filter", f"@{filter_file}",
                        "--description", "two orders or more")
    assert code == 0 and "saved 'Loyal ones' as 1: at least 2 orders" in out
    code, out, _ = _run(capsys, "segments", "members", "loyal ones", "--format", "json")
    assert [row["email"] for row in json.loads(out)] == ["vip@example.com", "referrer@example.com"]
    code, out, _ = _run(capsys, "segments", "members", "1", "--format", "json", "--limit", "1")
    assert [row["email"] for row in json.loads(out)] == ["vip@example.com"]
    assert json.loads(_run(capsys, "segments", "show", "Loyal ones")[1]) == {
        "conditions": [{"kind": "frequency", "min": 2}]}

    code, out, err = _run(capsys, "predict", "scores", "--segment", "Loyal ones")
    assert code == 0 and [row["id"] for row in csv.DictReader(io.StringIO(out))] == [
        str(store["vip"]), str(store["referrer"])]
    assert "2 stored scores in segment 'Loyal ones'" in err

    code, _, err = _run(capsys, "segments", "count", "nobody")
    assert code == 1 and "no segment 'nobody'" in err
    code, _, err = _run(capsys, "segments", "count", '[{"kind": "tier"}]')
    assert code == 1 and "condition 1: tier: tiers is required" in err
    code, _, err = _run(capsys, "segments", "delete", "detractors")
    assert code == 1 and "built in and cannot be deleted" in err
    assert _run(capsys, "segments", "delete", "Loyal ones")[0] == 0
    assert _run(capsys, "segments", "count", "1")[0] == 1
