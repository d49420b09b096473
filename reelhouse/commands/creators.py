"""`reelhouse creators …` and `reelhouse accounts …`"""
from __future__ import annotations

import json
import sys
from typing import Optional

import click

from reelhouse.services.errors import ServiceError


@click.group("creators")
def creators() -> None:
    """Manage creators (accounts with a channel: they upload)."""


@creators.command("add")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def add(name: str, as_json: bool) -> None:
    """Register a creator and print its API token (shown once; stored hashed)."""
    with _accounts() as accounts:
        creator, token = _or_exit(lambda: accounts.add_creator(name))
    if as_json:
        click.echo(json.dumps({"id": creator.id, "name": creator.name, "token": token}))
    else:
        click.echo(f"creator {creator.name} ({creator.id})")
        click.echo(f"API token (keep it; it is not shown again): {token}")


@click.group("accounts")
def accounts() -> None:
    """Manage accounts: viewers, admins, and the passwords creators sign in with."""


@accounts.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="an admin: sees the platform dashboard")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (first line)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def add_account(name: str, admin: bool, password_stdin: bool, as_json: bool) -> None:
    """Register an account that signs in with a password (asked for, unless --password-stdin)."""
    password = _password(password_stdin)
    with _accounts() as service:
        account = _or_exit(lambda: service.add_account(name, password=service.check_password(password, name),
                                                        admin=admin))
    if as_json:
        click.echo(json.dumps({"id": account.id, "name": account.name, "is_admin": account.is_admin}))
    else:
        click.echo(f"account {account.name} ({account.id}){' admin' if account.is_admin else ''}")


@accounts.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input (first line)")
def set_password(name: str, password_stdin: bool) -> None:
    """Set the password of an account (a creator made by `creators add` can then sign in); signs it out
    everywhere."""
    password = _password(password_stdin)
    with _accounts() as service:
        account = _or_exit(lambda: service.set_password(name, password))
    click.echo(f"password set for {account.name} ({account.id}); its sessions were signed out")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line: Optional[str] = sys.stdin.readline()
        password = (line or "").rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        click.echo("error: no terminal to ask for the password: pass --password-stdin", err=True)
        sys.exit(2)
    return password


class _accounts:
    def __enter__(self):
        from reelhouse.bootstrap import bootstrap

        self.platform = bootstrap()
        return self.platform.accounts

    def __exit__(self, *exc):
        self.platform.close()


def _or_exit(action):
    try:
        return action()
    except ServiceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
