"""`reelhouse creators add`, `reelhouse accounts add` and `reelhouse accounts set-password`, run as a user
runs them (a process, the home's real engines)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "reelhouse.cli"]


@pytest.fixture
def cli(settings):
    from reelhouse.ops.service import settings_environment

    env = {**os.environ, **settings_environment(settings)}

    def run(*args, stdin=None):
        return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)

    return run


def test_a_creator_made_by_the_cli_signs_in_after_set_password_and_keeps_its_token(cli, platform):
    made = cli("creators", "add", "ada", "--json")
    assert made.returncode == 0, made.stderr
    creator = json.loads(made.stdout)
    assert set(creator) == {"id", "name", "token"} and creator["name"] == "ada"

    done = cli("accounts", "set-password", "ada", "--password-stdin", stdin="a long password\n")
    assert done.returncode == 0, done.stderr
    assert "password set for ada" in done.stdout and "a long password" not in done.stdout
    assert platform.accounts.sign_in("ada", "a long password").id == creator["id"]
    assert platform.accounts.authenticate(f"Bearer {creator['token']}").is_creator


def test_accounts_add_makes_an_admin_without_a_channel(cli, platform):
    made = cli("accounts", "add", "root", "--admin", "--password-stdin", "--json", stdin="the admin password\n")
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    account = platform.catalog.get_account(body["id"])
    assert (account.name, account.is_admin, account.has_channel) == ("root", True, False)
    assert platform.accounts.sign_in("root", "the admin password").id == account.id


@pytest.mark.parametrize("args, stdin, message", [
    (("accounts", "add", "../bad", "--password-stdin"), "long enough pw\n", "a name is"),
    (("accounts", "add", "shorty", "--password-stdin"), "short\n", "a password is"),
    (("accounts", "set-password", "nobody", "--password-stdin"), "long enough pw\n", "no account named"),
    (("accounts", "add", "noterm"), "", "--password-stdin"),
])
def test_bad_input_is_a_message_and_a_non_zero_exit_and_stores_nothing(cli, platform, args, stdin, message):
    answer = cli(*args, stdin=stdin)
    assert answer.returncode == 2 and message in answer.stderr, answer.stderr
    assert platform.catalog.account_by_name(args[2]) is None
