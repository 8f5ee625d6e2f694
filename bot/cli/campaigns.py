"""`python -m bot campaigns create|list|dry-run|send|results`: campaigns to an audience through the outbox
(bot/campaigns/). The send only queues; the web app's scheduler routes and the channels deliver."""
from __future__ import annotations

import argparse
from typing import Any, List

from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError, find_customer, positive_id, store_call

SHOWN = 50


def _audience(session: Session, references: str) -> List[int]:
    return [find_customer(session, reference).id for reference in references.split(",") if reference.strip()]


def _create(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.campaigns.service import CampaignError, audience_label, create_campaign

    def work(session: Session, program: Any) -> None:
        campaign = create_campaign(
            session, program, name=args.name, text=args.text,
            audience={"segment": args.segment} if args.segment else {"customer_ids": _audience(session, args.customers)},
            now=clock.now(), kind="poll" if args.option else "message", buttons=args.button or (),
            options=args.option or (), bonus_points=args.bonus, created_by=args.by, holdout_percent=args.holdout)
        print(f"[campaigns] campaign {campaign.id} ({campaign.kind}) created: {audience_label(campaign)}, "
              f"holdout {campaign.holdout_percent} %; see who gets it: campaigns dry-run {campaign.id}")

    store_call(work, refusals=(CampaignError,))
    return 0


def _list(_: argparse.Namespace) -> int:
    from bot.campaigns.service import audience_label, list_campaigns

    def work(session: Session, _program: Any) -> None:
        campaigns = list_campaigns(session)
        print(f"{'id':>4}  {'created':<16} {'kind':<8} {'status':<6} {'name':<30} audience")
        for campaign in campaigns:
            print(f"{campaign.id:>4}  {campaign.created_at:%Y-%m-%d %H:%M} {campaign.kind:<8} {campaign.status:<6} "
                  f"{campaign.name[:30]:<30} {audience_label(campaign)}")
        print(f"[campaigns] {len(campaigns)} shown")

    store_call(work, write=False)
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.campaigns.service import CampaignError, dry_run

    def work(session: Session, program: Any) -> None:
        plan = dry_run(session, program, args.id, clock.now())
        print(f"{'customer':>8}  {'email':<28} {'outcome':<8} {'channel':<10} reason / text")
        for row in plan.recipients[:args.show]:
            detail = row.reason or row.text or ""
            if row.reason and row.text:
                detail = f"{row.reason}; {row.text}"
            print(f"{row.customer_id:>8}  {(row.email or '-')[:28]:<28} {row.outcome:<8} {row.channel or '-':<10} "
                  f"{detail}")
        counts = ", ".join(f"{outcome} {count}" for outcome, count in sorted(plan.counts.items()))
        channels = ", ".join(f"{channel} {count}" for channel, count in sorted(plan.channels.items())) or "none"
        print(f"[campaigns] dry run of campaign {plan.campaign_id}: audience {plan.audience}: {counts}; "
              f"channels: {channels} (nothing was queued)")

    store_call(work, write=False, refusals=(CampaignError,))
    return 0


def _send(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.campaigns.service import CampaignError, send_campaign

    def work(session: Session, program: Any) -> None:
        report = send_campaign(session, program, args.id, clock.now())
        if report.already_sent:
            print(f"[campaigns] campaign {report.campaign_id} was already sent ({report.queued} queued, "
                  f"{report.holdout} held out): nothing more queued")
            return
        print(f"[campaigns] campaign {report.campaign_id}: {report.queued} messages queued in the outbox, "
              f"{report.holdout} held out")

    store_call(work, refusals=(CampaignError,))
    return 0


def _rate(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _results(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.campaigns.results import campaign_results
    from bot.campaigns.service import CampaignError

    def work(session: Session, program: Any) -> None:
        result = campaign_results(session, program, args.id, clock.now(), segments=args.segment or ())
        print(f"campaign {result.campaign_id} ({result.kind}) {result.name!r}, sent {result.sent_at:%Y-%m-%d %H:%M}; "
              f"orders within {result.window_days} days")
        states = ", ".join(f"{state} {count}" for state, count in sorted(result.states.items())) or "none"
        print(f"  outbox     {states}")
        for reason, count in sorted(result.skipped_reasons.items()):
            print(f"  skipped    {count} {reason}")
        print(f"  {'':<10} {'members':>8} {'sent':>6} {'delivered':>9} {'replied':>8} {'redeemed':>8} {'ordered':>8} "
              f"{'rate':>8} {'revenue':>10}")
        for label, group, sent, delivered, replied in (
                ("messaged", result.messaged, result.sent, result.delivered, result.replied),
                ("holdout", result.holdout, "-", "-", "-")):
            print(f"  {label:<10} {group.members:>8} {sent:>6} {delivered:>9} {replied:>8} {group.redeemed:>8} "
                  f"{group.ordered:>8} {_rate(group.order_rate):>8} {program.money(group.revenue):>10}")
        lift = "-" if result.lift is None else f"{result.lift:+.1f} points"
        print(f"  lift       {lift} (order rate, messaged minus holdout)")
        for title, count in result.options:
            print(f"  option     {title:<20} {count:>5}")
        for tier, counts in sorted(result.options_by_tier.items()):
            print(f"  {tier:<10} " + ", ".join(f"{title} {count}" for (title, _), count in zip(result.options, counts)))
        for answers in result.options_by_segment:
            shares = ", ".join(f"{title} {count}" + ("" if share is None else f" ({100 * share:.0f} %)")
                               for (title, _), count, share in zip(result.options, answers.counts, answers.shares))
            print(f"  segment    {answers.name}: {answers.members} members, {answers.messaged} messaged, "
                  f"{answers.answered} answered: {shares}")

    store_call(work, write=False, refusals=(CampaignError,))
    return 0


def add_campaign_commands(commands: Any) -> None:
    campaigns = commands.add_parser("campaigns", help="messages and polls to an audience through the outbox") \
        .add_subparsers(dest="campaigns_command", required=True)
    create = campaigns.add_parser("create", help="a draft campaign (a message, or a poll with --option)")
    create.add_argument("--name", required=True)
    create.add_argument("--text", required=True, help="with personal fields {first_name} {tier} {balance} "
                                                      "{expiring_points} {expiry_date}")
    audience = create.add_mutually_exclusive_group(required=True)
    audience.add_argument("--segment", help="the audience: a segment (built-in key, saved id or name; "
                                            "python -m bot segments list); its members when sent")
    audience.add_argument("--customers", help="the audience: customer ids or emails, comma-separated")
    create.add_argument("--button", action="append", help="redeem, quiz, points, tier, refer or review "
                                                          "(\"redeem=Use my points\" for another title); repeatable")
    create.add_argument("--option", action="append", help="a poll's answer (makes it a poll); repeatable")
    create.add_argument("--bonus", type=int, default=0, help="points credited once to each customer who acts")
    create.add_argument("--holdout", type=int, default=None, help="percent held out (default: the program's)")
    create.add_argument("--by", default="operator", help="who made it")
    create.set_defaults(handler=_create)
    campaigns.add_parser("list", help="campaigns, newest first").set_defaults(handler=_list)
    dry = campaigns.add_parser("dry-run", help="who would get it on which chat, who not and why (writes nothing)")
    dry.add_argument("id", type=positive_id)
    dry.add_argument("--show", type=int, default=SHOWN, help="rows to print")
    dry.set_defaults(handler=_dry_run)
    send = campaigns.add_parser("send", help="queue it in the outbox for everyone outside the holdout")
    send.add_argument("id", type=positive_id)
    send.set_defaults(handler=_send)
    results = campaigns.add_parser("results", help="sent, delivered, replied, redeemed, ordered vs the holdout")
    results.add_argument("id", type=positive_id)
    results.add_argument("--segment", action="append", help="a poll's answers among this segment's members "
                                                            "(built-in key, saved id or name); repeatable")
    results.set_defaults(handler=_results)


__all__ = ["CommandError", "add_campaign_commands"]
