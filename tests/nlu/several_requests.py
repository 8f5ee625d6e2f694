"""How well bot/several_requests.py finds several requests in one message, on the held-out messages.

    .venv/bin/python -m tests.nlu.several_requests [--model models/rapport.tar.gz]

- tests/nlu/heldout/multi_request.yml (two or three requests each, with their intents in order): how many
  are found to be several, and how many have their first two requests (the two answered) read right, in
  either order;
- the single-request held-out messages (in_scope.yml, off_topic.yml): how many are wrongly cut up.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import yaml

from tests.nlu.evaluate import HELDOUT_DIR, load_heldout, quiet_rasa


@dataclass
class SplitReport:
    several: List[Tuple[str, List[str], List[str]]] = field(default_factory=list)  # text, expected, found
    single_cut: List[Tuple[str, List[str]]] = field(default_factory=list)  # single requests cut up
    single_total: int = 0

    @property
    def found_share(self) -> float:
        return sum(len(found) >= 2 for _, _, found in self.several) / max(1, len(self.several))

    @property
    def first_two_share(self) -> float:
        # in either order: a request that asks something back is answered last (bot/several_requests.py)
        right = sum(len(found) >= 2 and set(found[:2]) == set(expected[:2]) for _, expected, found in self.several)
        return right / max(1, len(self.several))

    @property
    def false_cut_share(self) -> float:
        return len(self.single_cut) / max(1, self.single_total)


def multi_request_messages(directory: Path = HELDOUT_DIR) -> List[Tuple[str, List[str]]]:
    data = yaml.safe_load((directory / "multi_request.yml").read_text(encoding="utf-8"))
    return [(str(item["text"]), [str(intent) for intent in item["intents"]]) for item in data["messages"]]


async def _evaluate(agent: Any, several: Sequence[Tuple[str, List[str]]], single: Sequence[str]) -> SplitReport:
    from rasa.core.channels.channel import UserMessage

    from bot.several_requests import reading_of, split_requests

    async def classify(text: str):
        return reading_of(await agent.processor.parse_message(UserMessage(text)))

    report = SplitReport(single_total=len(single))
    for text, expected in several:
        requests = await split_requests(text, classify)
        found = [(await classify(request)).intent for request in requests] if len(requests) >= 2 else []
        report.several.append((text, expected, found))
    for text in single:
        requests = await split_requests(text, classify)
        if len(requests) >= 2:
            report.single_cut.append((text, requests))
    return report


def evaluate(model: Path, agent: Any = None) -> SplitReport:
    """The report for the model at `model`, or for `agent`, that model already loaded (tests share one)."""
    quiet_rasa()
    if agent is None:
        from rasa.core.agent import Agent

        agent = Agent.load(str(model))
    single = [example.text for example in load_heldout()]
    return asyncio.run(_evaluate(agent, multi_request_messages(), single))


def print_report(report: SplitReport, out=sys.stdout) -> None:
    print(f"several requests (multi_request.yml, {len(report.several)} messages): found "
          f"{report.found_share:.3f}, first two read right {report.first_two_share:.3f}", file=out)
    print(f"single requests cut up: {len(report.single_cut)} of {report.single_total} "
          f"({report.false_cut_share:.3f})", file=out)
    for text, requests in report.single_cut[:15]:
        print(f"  cut: {text!r} -> {requests}", file=out)
    missed = [(text, expected, found) for text, expected, found in report.several
              if set(found[:2]) != set(expected[:2])]
    for text, expected, found in missed[:25]:
        print(f"  missed: {text!r}: expected {expected}, found {found or 'one request'}", file=out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bot.training import model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    print_report(evaluate(args.model or model_path()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
