"""`python -m bot merchant add|list|password|disable|enable`: accounts for the merchant console.

A password is read from standard input when it is not a terminal (`--password-stdin` style, for scripts),
else asked for twice without echo. It never appears on the command line, where `ps` and shell history
would keep it.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy.orm import Session

from bot.cli.loyalty import CommandError, store_call
from bot.console.accounts import ROLES, AccountError


def read_password(prompt: str = "Password") -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        return password
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def _add(args: argparse.Namespace) -> int:
    from bot import clock
    from bot.console.accounts import add_merchant
    from bot.db import get_database

    password = read_password()
    get_database().create_schema()  # the first account may come before the first `make run`

    def work(session: Session, _program: Any) -> None:
        merchant = add_merchant(session, args.email, args.name or "", args.role, password, clock.now())
        print(f"[merchant] added {merchant.email} ({merchant.role}), id {merchant.id}")

    store_call(work, refusals=(AccountError,))
    return 0


def _list(_: argparse.Namespace) -> int:
    from bot.console.accounts import list_merchants

    def work(session: Session, _program: Any) -> None:
        merchants = list_merchants(session)
        print(f"{'id':>4}  {'email':<32} {'name':<20} {'role':<6} {'active':<6} last sign-in")
        for merchant in merchants:
            last = f"{merchant.last_login_at:%Y-%m-%d %H:%M}" if merchant.last_login_at else "-"
            print(f"{merchant.id:>4}  {merchant.email:<32} {merchant.name:<20} {merchant.role:<6} "
                  f"{'yes' if merchant.active else 'no':<6} {last}")
        print(f"[merchant] {len(merchants)} accounts")

    store_call(work, refusals=(AccountError,))
    return 0


def _find(session: Session, email: str) -> Any:
    from bot.console.accounts import merchant_by_email

    merchant = merchant_by_email(session, email)
    if merchant is None:
        raise CommandError(f"no merchant with e-mail {email}")
    return merchant


def _password(args: argparse.Namespace) -> int:
    from bot.console.accounts import set_password

    password = read_password("New password")

    def work(session: Session, _program: Any) -> None:
        set_password(session, _find(session, args.email), password)
        print(f"[merchant] password changed for {args.email}; their sessions were signed out")

    store_call(work, refusals=(AccountError,))
    return 0


def _set_active(active: bool) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from bot.console.accounts import set_active

        def work(session: Session, _program: Any) -> None:
            set_active(session, _find(session, args.email), active)
            print(f"[merchant] {args.email} {'enabled' if active else 'disabled (signed out everywhere)'}")

        store_call(work, refusals=(AccountError,))
        return 0

    return handler


def add_merchant_commands(commands: Any) -> None:
    merchant = commands.add_parser("merchant", help="merchant console accounts").add_subparsers(
        dest="merchant_command", required=True)
    add = merchant.add_parser("add", help="create an account (password asked for, or read from stdin)")
    add.add_argument("email")
    add.add_argument("--name", help="shown in the console and on notes (default: the e-mail's name)")
    add.add_argument("--role", choices=ROLES, default="agent",
                     help="owner: everything; agent: feedback inbox and handoff queue (default)")
    add.set_defaults(handler=_add)
    merchant.add_parser("list", help="every account").set_defaults(handler=_list)
    password = merchant.add_parser("password", help="set a new password (signs the merchant out everywhere)")
    password.add_argument("email")
    password.set_defaults(handler=_password)
    for name, active in (("disable", False), ("enable", True)):
        command = merchant.add_parser(name, help=f"{name} an account")
        command.add_argument("email")
        command.set_defaults(handler=_set_active(active))
