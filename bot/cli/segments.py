"""`python -m bot segments list|show|count|members|save|delete`: segments (bot/segments/) by hand.

A segment argument (SEGMENT) is a built-in key (`vips_at_risk`), a saved segment's id or name, or a filter
written inline as JSON ('[{"kind": "frequency", "min": 2}]'). `python -m bot predict scores --segment
SEGMENT` takes the same.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError


def segment_filter(session: Session, ref: str) -> Any:
    """The filter SEGMENT names (or spells out as JSON); CommandError when there is none."""
    from bot.segments.conditions import SegmentError
    from bot.segments.filters import SegmentFilter
    from bot.segments.service import UnknownSegment, resolve

    text = ref.strip()
    try:
        if text.startswith(("{", "[")):
            return SegmentFilter.from_json(text)
        return resolve(session, text)
    except (SegmentError, UnknownSegment) as error:
        raise CommandError(str(error)) from None


def _list(_: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.segments.service import list_segments

    with get_database().session() as session:
        segments = list_segments(session)
        width = max(len(segment.ref) for segment in segments)
        for segment in segments:
            kind = "built-in" if segment.built_in else "saved"
            print(f"{segment.ref:<{width}}  {segment.name}  ({kind}): {segment.filter.describe()}")
    print(f"[segments] {len(segments)} segments; count one with `python -m bot segments count SEGMENT`",
          file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from bot.db import get_database

    with get_database().session() as session:
        print(json.dumps(segment_filter(session, args.segment).to_json(), indent=2))
    return 0


def _count(args: argparse.Namespace) -> int:
    import time

    from bot.db import get_database
    from bot.segments.service import count

    with get_database().session() as session:
        chosen = segment_filter(session, args.segment)
        started = time.perf_counter()
        size = count(session, chosen)
        seconds = time.perf_counter() - started
    print(f"{size}")
    print(f"[segments] {size:,} customers: {chosen.describe()} (counted in {seconds * 1000:.0f} ms)", file=sys.stderr)
    return 0


def _members(args: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.segments import export
    from bot.segments.service import all_members

    written = 0
    try:
        with get_database().session() as session:
            chosen = segment_filter(session, args.segment)
            if args.format == "json":
                sys.stdout.write("[")
            else:
                sys.stdout.write(export.header(bom=False))
            for member in all_members(session, chosen):
                if args.limit is not None and written >= args.limit:
                    break
                if args.format == "json":
                    sys.stdout.write(("," if written else "") + "\n" + json.dumps(export.row_values(member)))
                else:
                    sys.stdout.write(export.rows_csv([member]))
                written += 1
            if args.format == "json":
                sys.stdout.write("\n]\n")
            sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit: not into the pipe
        return 0
    print(f"[segments] {written:,} members: {chosen.describe()}", file=sys.stderr)
    return 0


def _save(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import transaction
    from bot.segments.conditions import SegmentError
    from bot.segments.service import save_segment

    text = args.filter
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"{text[1:]}: cannot be read ({error.strerror or error})") from None

    def work(session: Session) -> Any:
        chosen = segment_filter(session, text)
        return save_segment(session, args.name, chosen, by="cli", description=args.description or "", now=clock.now())

    try:
        segment = transaction(work, write=True)
    except SegmentError as error:
        raise CommandError(str(error)) from None
    print(f"[segments] saved {segment.name!r} as {segment.ref}: {segment.filter.describe()}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from bot.db import transaction
    from bot.segments.conditions import SegmentError
    from bot.segments.service import UnknownSegment, delete_segment

    try:
        segment = transaction(lambda session: delete_segment(session, args.segment), write=True)
    except (SegmentError, UnknownSegment) as error:
        raise CommandError(str(error)) from None
    print(f"[segments] deleted {segment.name!r} ({segment.ref})")
    return 0


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_segment_commands(commands: Any) -> None:
    segments = commands.add_parser(
        "segments", help="segments: saved filters over customers (built-in, saved, or JSON inline)"
    ).add_subparsers(dest="segments_command", required=True)
    segments.add_parser("list", help="every built-in and saved segment and its filter").set_defaults(handler=_list)
    show = segments.add_parser("show", help="a segment's filter as JSON (edit it, then `save`)")
    show.add_argument("segment", metavar="SEGMENT")
    show.set_defaults(handler=_show)
    counting = segments.add_parser("count", help="how many customers a segment has now")
    counting.add_argument("segment", metavar="SEGMENT")
    counting.set_defaults(handler=_count)
    listing = segments.add_parser("members", help="every member with the reason they match")
    listing.add_argument("segment", metavar="SEGMENT")
    listing.add_argument("--format", choices=("csv", "json"), default="csv")
    listing.add_argument("--limit", type=_limit, help="at most this many members")
    listing.set_defaults(handler=_members)
    save = segments.add_parser("save", help="save a filter under a name (replaces the filter of that name)")
    save.add_argument("name")
    save.add_argument("--filter", required=True, metavar="SEGMENT|JSON|@FILE",
                      help="a filter as JSON, @file.json, or another segment to copy")
    save.add_argument("--description", default="")
    save.set_defaults(handler=_save)
    delete = segments.add_parser("delete", help="delete a saved segment")
    delete.add_argument("segment", metavar="SEGMENT")
    delete.set_defaults(handler=_delete)
