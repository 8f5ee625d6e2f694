"""`python -m bot …`: the operator's commands."""
from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.campaigns import add_campaign_commands
from bot.cli.catalog import add_catalog_commands
from bot.cli.loyalty import CommandError, add_loyalty_commands, store_call
from bot.cli.merchants import add_merchant_commands
from bot.cli.predict import add_predict_commands
from bot.cli.moderation import add_moderation_commands
from bot.cli.privacy import add_privacy_commands
from bot.cli.quiz import add_quiz_commands
from bot.cli.referrals import add_referral_commands
from bot.cli.segments import add_segment_commands
from bot.cli.telegram import add_telegram_commands
from bot.config_files import ConfigError
from bot.settings import SettingsError, get_settings


def _db_upgrade(_: argparse.Namespace) -> int:
    from bot.db import get_database

    database = get_database()
    database.create_schema()
    print(f"[db] schema is current: {_safe_url(database.url)}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.demo import seed_demo
    from bot.loyalty.program import get_program
    from bot.shop import get_shop

    if not args.demo:
        print("nothing to seed: pass --demo to add the demo shop", file=sys.stderr)
        return 2
    database = get_database()
    database.create_schema()
    with database.session(write=True) as session:
        report = seed_demo(session, get_program(), get_shop().store_url)
    print(
        f"[seed] demo shop: {report.products_added} products added, {report.customers_added} customers added, "
        f"{report.customers_existing} already present"
    )
    return 0


def _customers_list(_: argparse.Namespace) -> int:
    from bot import clock
    from bot.db import get_database
    from bot.loyalty.program import get_program
    from bot.loyalty.tiers import tier_status
    from bot.models import ChannelIdentity, Customer

    program = get_program()
    with get_database().session() as session:
        customers = session.execute(select(Customer).order_by(Customer.id)).scalars().all()
        print(f"{'id':>4}  {'email':<32} {'points':>8}  {'tier':<9} senders")
        for customer in customers:
            senders = session.execute(
                select(ChannelIdentity.channel, ChannelIdentity.external_id).where(ChannelIdentity.customer_id == customer.id)
            ).all()
            tier = tier_status(session, customer.id, program, clock.now()).tier.name
            linked = ", ".join(f"{channel}:{external}" for channel, external in senders) or "-"
            print(f"{customer.id:>4}  {customer.email or '-':<32} {customer.points_balance:>8,}  {tier:<9} {linked}")
    return 0


def _customers_link(args: argparse.Namespace) -> int:
    from bot.identity import customer_by_email, link_identity

    def work(session: Session, _program: Any) -> None:
        customer = customer_by_email(session, args.email)
        if customer is None:
            raise CommandError(f"no customer with email {args.email}")
        link_identity(session, customer.id, args.channel, args.sender)

    store_call(work)
    print(f"[customers] {args.channel} sender {args.sender!r} is linked to {args.email}")
    return 0


def _handoffs_list(_: argparse.Namespace) -> int:
    from bot.db import get_database
    from bot.handoff import open_requests

    with get_database().session() as session:
        requests = open_requests(session)
        for request in requests:
            last = request.last_messages[-1]["text"] if request.last_messages else ""
            who = f"customer {request.customer_id}" if request.customer_id else "guest"
            print(f"#{request.id}  {request.requested_at:%Y-%m-%d %H:%M}  {request.channel}:{request.sender_id} ({who})  last: {last[:60]!r}")
        print(f"[handoffs] {len(requests)} open")
    return 0


def _config_check(_: argparse.Namespace) -> int:
    from bot.loyalty.program import get_program
    from bot.shop import get_shop

    program, shop = get_program(), get_shop()
    print(f"[config] {shop.name}: {len(program.tiers)} tiers, {len(program.rewards)} rewards, currency {program.currency}")
    return 0


def _train(args: argparse.Namespace) -> int:
    _train_if_changed(force=args.force)
    return 0


def _train_if_changed(force: bool = False) -> None:
    from bot.training import TrainingFailed, train_if_changed

    try:
        train_if_changed(force=force)
    except TrainingFailed as error:
        raise CommandError(str(error)) from None


def _validate(_: argparse.Namespace) -> int:
    from bot.training import validate_data

    return 1 if validate_data() else 0


def _web(_: argparse.Namespace) -> int:
    from bot.web import serve

    return serve(get_settings())


def _run(args: argparse.Namespace) -> int:
    from bot.runner import run_stack

    if args.replicas:
        return _run_cluster(args)
    _config_check(args)
    _db_upgrade(args)
    _seed(argparse.Namespace(demo=True))
    console_login = _demo_console_login()
    _train_if_changed()
    return run_stack(get_settings(), console_login=console_login)


def _positive(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("must be between 1 and 16")
    return value


def _run_cluster(args: argparse.Namespace) -> int:
    """The scaled-out layout: the store and conversations in PostgreSQL (DATABASE_URL if it names one, else
    the local server's rapport_cluster database, created if missing), then bot.cluster.runner."""
    import os

    from bot import db as db_module
    from bot.cluster.runner import Layout, cluster_database_url, ensure_database, run_cluster
    from bot.settings import reset_settings
    from bot.training import train_if_changed

    url = cluster_database_url(get_settings())
    os.environ["DATABASE_URL"] = url
    reset_settings()
    db_module.reset_database()
    ensure_database(url)
    _config_check(args)
    _db_upgrade(args)
    _seed(argparse.Namespace(demo=True))
    console_login = _demo_console_login()
    train_if_changed()
    layout = Layout(replicas=args.replicas, action_servers=args.action_servers, web_apps=args.web_apps)
    return run_cluster(get_settings(), layout, console_login=console_login)


def _demo_console_login() -> Optional[str]:
    """The demo owner's login for the console, made on the first development start (never in production)."""
    from bot import clock
    from bot.console.accounts import ensure_demo_owner
    from bot.db import get_database
    from bot.runner import development_secret

    settings = get_settings()
    if settings.environment == "production":
        return None
    password = development_secret(settings.data_dir, "console-demo-password")
    with get_database().session(write=True) as session:
        return ensure_demo_owner(session, password, clock.now())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=".venv/bin/python -m bot", description="Rapport operator commands")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="create or upgrade the schema (Alembic migrations)").set_defaults(handler=_db_upgrade)

    seed = commands.add_parser("seed", help="add demo data")
    seed.add_argument("--demo", action="store_true", help="the demo shop: catalog, customers, points history")
    seed.set_defaults(handler=_seed)

    customers = commands.add_parser("customers", help="customers and their chat identities").add_subparsers(
        dest="customers_command", required=True
    )
    customers.add_parser("list", help="customers with points, tier and linked senders").set_defaults(handler=_customers_list)
    link = customers.add_parser("link", help="link a chat sender to a customer")
    link.add_argument("--email", required=True)
    link.add_argument("--channel", required=True, help="rest, telegram, instagram, …")
    link.add_argument("--sender", required=True, help="the sender id on that channel")
    link.set_defaults(handler=_customers_link)
    add_privacy_commands(customers)

    add_loyalty_commands(commands)
    add_catalog_commands(commands)
    add_quiz_commands(commands)
    add_referral_commands(commands)
    add_telegram_commands(commands)
    add_moderation_commands(commands)
    add_merchant_commands(commands)
    add_predict_commands(commands)
    add_segment_commands(commands)
    add_campaign_commands(commands)

    handoffs = commands.add_parser("handoffs", help="requests to talk to a person").add_subparsers(
        dest="handoffs_command", required=True
    )
    handoffs.add_parser("list", help="open requests, oldest first").set_defaults(handler=_handoffs_list)

    config = commands.add_parser("config", help="configuration files").add_subparsers(dest="config_command", required=True)
    config.add_parser("check", help="validate data/program.yml and data/shop.yml").set_defaults(handler=_config_check)

    train = commands.add_parser("train", help="train the Rasa model if its data changed")
    train.add_argument("--force", action="store_true", help="train even if the model is current")
    train.set_defaults(handler=_train)

    commands.add_parser("validate", help="check the training data (rasa data validate; its output in "
                        "var/validate.log)").set_defaults(handler=_validate)
    commands.add_parser("web", help="the web app alone: store API and scheduled loyalty jobs").set_defaults(handler=_web)
    run = commands.add_parser(
        "run", help="set up the store, train if needed, start the Rasa server, action server and web app"
    )
    run.add_argument("--replicas", type=_positive, default=0, metavar="N",
                     help="the scaled-out layout: N Rasa servers behind HAProxy, on PostgreSQL and Redis")
    run.add_argument("--action-servers", type=_positive, default=2, metavar="M", help="with --replicas (default 2)")
    run.add_argument("--web-apps", type=_positive, default=2, metavar="K", help="with --replicas (default 2)")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
