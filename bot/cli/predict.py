"""`python -m bot predict refit|scores|backtest`: the repeat-purchase prediction (bot/prediction/) by hand.

  refit      fit on every order so far, score every customer and store the scores (what the web app's
             scheduled job does every PREDICTION_REFIT_HOURS)
  scores     one row per customer: id, email, store customer id, probability, reasons — the stored
             scores (with --segment SEGMENT only its members; bot/cli/segments.py), or with --as-of DATE
             scores computed from the orders before DATE (stored nowhere)
  backtest   fit on the orders before --cutoff, score who bought in the --horizon days after: AUC, Brier
             and calibration for our model and the two baselines

Progress goes to stderr, results to stdout.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any, Iterable, Optional

from bot.cli.loyalty import CommandError
from bot.cli.quiz import _date  # a day as midnight UTC, or an argparse error


def _horizon(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 1 to 3650")
    return int(text)


def _progress(message: str) -> None:
    print(f"[predict] {message}", file=sys.stderr, flush=True)


def _currency_symbol() -> str:
    from bot.loyalty.program import get_program

    return get_program().currency_symbol


def _refit(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.prediction.model import NotEnoughHistory
    from bot.prediction.service import refit

    database = get_database()
    database.create_schema()
    try:
        report = refit(database, clock.now(), horizon=args.horizon, currency_symbol=_currency_symbol(),
                       progress=_progress)
    except NotEnoughHistory as error:
        raise CommandError(str(error)) from None
    print(f"[predict] run {report.run_id}: {report.customers_scored:,} customers scored "
          f"({report.with_orders:,} with orders) with {report.model_version} in {report.seconds:.1f} s")
    return 0


def _write(rows: Iterable[Any], output_format: str) -> Optional[int]:
    """The rows on stdout, and how many; None when the reader stopped early (`| head`): quietly."""
    try:
        return _write_rows(rows, output_format)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit: not into the broken pipe
        return None


def _write_rows(rows: Iterable[Any], output_format: str) -> int:
    count = 0
    if output_format == "json":
        sys.stdout.write("[")
        for row in rows:
            sys.stdout.write(("," if count else "") + "\n" + json.dumps({
                "id": row.customer_id, "email": row.email, "store_customer_id": row.store_customer_id,
                "probability": round(row.probability, 4), "reasons": row.reasons}))
            count += 1
        sys.stdout.write("\n]\n")
        return count
    writer = csv.writer(sys.stdout)
    writer.writerow(["id", "email", "store_customer_id", "probability", "reasons"])
    for row in rows:
        writer.writerow([row.customer_id, row.email or "", row.store_customer_id or "", f"{row.probability:.4f}",
                         row.reasons])
        count += 1
    return count


def _scores(args: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.prediction.model import NotEnoughHistory
    from bot.prediction.service import latest_run, rows_as_of, stored_rows

    database = get_database()
    if args.as_of is not None:
        if args.segment is not None:
            raise CommandError("--segment reads the stored scores; it cannot be combined with --as-of")
        try:
            scores, rows = rows_as_of(database, args.as_of, horizon=args.horizon, currency_symbol=_currency_symbol(),
                                      progress=_progress)
        except NotEnoughHistory as error:
            raise CommandError(str(error)) from None
        count = _write(rows, args.format)
        if count is not None:
            _progress(f"{count:,} customers scored as of {args.as_of:%Y-%m-%d} with {scores.version}, "
                      f"horizon {args.horizon} days (not stored)")
        return 0
    with database.session() as session:
        run = latest_run(session)
        if run is None:
            raise CommandError("no scores stored yet: run `python -m bot predict refit` (the web app refits on "
                               "its own every PREDICTION_REFIT_HOURS), or pass --as-of DATE")
        members = None
        if args.segment is not None:
            from bot.cli.segments import segment_filter
            from bot.segments.service import member_ids

            members = member_ids(session, segment_filter(session, args.segment))
        count = _write(stored_rows(session, members), args.format)
        if count is not None:
            _progress(f"{count:,} stored scores{' in segment ' + repr(args.segment) if members is not None else ''} from run {run.id} ({run.model_version}, as of "
                      f"{run.as_of:%Y-%m-%d %H:%M} UTC, horizon {run.horizon_days} days)")
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bot import clock
    from bot.db import get_database
    from bot.prediction.backtest import format_report, report_json
    from bot.prediction.model import NotEnoughHistory
    from bot.prediction.service import run_backtest

    horizon_end = args.cutoff + timedelta(days=args.horizon)
    if horizon_end > clock.now():
        raise CommandError(f"the {args.horizon} days after {args.cutoff:%Y-%m-%d} end on {horizon_end:%Y-%m-%d}, "
                           f"which has not happened yet: pick a cutoff at least {args.horizon} days ago")
    try:
        report = run_backtest(get_database(), args.cutoff, horizon=args.horizon, progress=_progress)
    except NotEnoughHistory as error:
        raise CommandError(str(error)) from None
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print(format_report(report, cutoff_label=f"{args.cutoff:%Y-%m-%d}"))
    return 0


def add_predict_commands(commands: Any) -> None:
    predict = commands.add_parser(
        "predict", help="repeat-purchase prediction: P(an order in the next 90 days) per customer, with reasons"
    ).add_subparsers(dest="predict_command", required=True)
    refit = predict.add_parser("refit", help="fit on every order so far, score and store every customer")
    refit.add_argument("--horizon", type=_horizon, default=90, help="days ahead (default 90)")
    refit.set_defaults(handler=_refit)
    scores = predict.add_parser("scores", help="one row per customer: id, email, store id, probability, reasons")
    scores.add_argument("--as-of", type=_date, metavar="DATE",
                        help="score from the orders before DATE (the horizon starts there); not stored")
    scores.add_argument("--horizon", type=_horizon, default=90, help="days ahead with --as-of (default 90)")
    scores.add_argument("--format", choices=("csv", "json"), default="csv")
    scores.add_argument("--segment", metavar="SEGMENT",
                        help="only the members of a segment (built-in key, saved id or name, or JSON)")
    scores.set_defaults(handler=_scores)
    backtest = predict.add_parser("backtest", help="fit before a cutoff, measure on the horizon after it")
    backtest.add_argument("--cutoff", type=_date, required=True, metavar="DATE")
    backtest.add_argument("--horizon", type=_horizon, default=90, help="days after the cutoff (default 90)")
    backtest.add_argument("--json", action="store_true", help="the figures as JSON")
    backtest.set_defaults(handler=_backtest)
