"""Accounts: creators (accounts with a channel) and viewers, passwords, API tokens and web sessions.

The rule for who calls (serving_api/auth.py) asks this service twice: ``authenticate`` for a bearer token,
``session_principal`` for the ``rh_session`` cookie. Passwords are hashed with argon2id (argon2-cffi's
RFC 9106 low-memory profile by default; its parameters are settings), and a hash made with older
parameters is replaced at the next sign-in.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from reelhouse.domain.accounts import ANONYMOUS, Account, Principal, hash_token, new_account_id, new_api_token
from reelhouse.ports import Catalog, CatalogError
from reelhouse.ports.web_sessions import WebSessions
from reelhouse.services.errors import BadRequest, Conflict, NotFound, Unauthorized

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
KNOWN_TOKEN_S = 10.0  # a valid token is looked up in the catalog at most this often per process
KNOWN_TOKENS_MAX = 10_000


class AccountService:
    def __init__(self, catalog: Catalog, sessions: Optional[WebSessions] = None, session_ttl_s: int = 14 * 86400,
                 hasher: Optional[PasswordHasher] = None, clock: Callable[[], float] = time.monotonic):
        self.catalog = catalog
        self.sessions = sessions
        self.session_ttl_s = session_ttl_s
        self.hasher = hasher or PasswordHasher()
        # token hash -> (principal, until): every upload PATCH authenticates, and the catalog query was
        # one of its costs (a round trip to Cassandra on the full stack). Only valid tokens are kept;
        # a token that could be revoked would work up to KNOWN_TOKEN_S longer here.
        self._known: dict[str, tuple[Principal, float]] = {}
        self._clock = clock
        self._decoy: Optional[str] = None

    # ------------------------------------------------------------------ creating accounts
    def add_creator(self, name: str) -> tuple[Account, str]:
        """Registers a creator (an account with a channel); returns it with its API token (shown once,
        stored hashed)."""
        token = new_api_token()
        account = self._create(name, token_hash=hash_token(token), has_channel=True)
        return account, token

    def add_account(self, name: str, *, password: Optional[str] = None, admin: bool = False,
                    channel: bool = False) -> Account:
        """An account for someone who signs in with a password (viewers, admins)."""
        password_hash = self._hash(password) if password is not None else None
        return self._create(name, password_hash=password_hash, is_admin=admin, has_channel=channel)

    def sign_up(self, name: str, password: str) -> Account:
        self.check_password(password, name)
        return self.add_account(name, password=password)

    def _create(self, name: str, **fields) -> Account:
        name = check_name(name)
        if self.catalog.account_by_name(name):
            raise Conflict(f"the name {name!r} is taken", field="name", code="name_taken")
        account = Account(id=new_account_id(), name=name, **fields)
        try:
            self.catalog.create_account(account)
        except CatalogError as exc:
            raise Conflict(str(exc), field="name", code="name_taken") from exc
        return account

    # ------------------------------------------------------------------ passwords
    def check_password(self, password, name: str = "") -> str:
        if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise BadRequest(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters", field="password",
                             code="weak_password")
        if name and password.strip().lower() == name.strip().lower():
            raise BadRequest("the password must not be the name", field="password", code="weak_password")
        return password

    def set_password(self, name: str, password: str) -> Account:
        """Sets the password of the account called ``name``, and signs it out everywhere."""
        account = self.catalog.account_by_name((name or "").strip())
        if account is None:
            raise NotFound(f"no account named {name!r}", field="name", code="unknown_account")
        self.check_password(password, account.name)
        self.catalog.update_account(account.id, password_hash=self._hash(password))
        if self.sessions is not None:
            self.sessions.revoke_all(account.id)
        return self.catalog.get_account(account.id)

    def sign_in(self, name: str, password: str) -> Account:
        """The account whose name and password these are; Unauthorized otherwise (the same answer, and
        about the same time, for an unknown name and a wrong password)."""
        account = self.catalog.account_by_name((name or "").strip()) if isinstance(name, str) else None
        stored = account.password_hash if account else None
        if not isinstance(password, str) or len(password) > PASSWORD_MAX:
            password = ""
        try:
            self.hasher.verify(stored or self._decoy_hash(), password)
        except (VerificationError, InvalidHashError):
            stored = None
        if account is None or stored is None:
            raise Unauthorized("that name and password do not match an account", field="password",
                               code="bad_credentials")
        if self.hasher.check_needs_rehash(stored):
            self.catalog.update_account(account.id, password_hash=self._hash(password))
        return account

    def _hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def _decoy_hash(self) -> str:
        if self._decoy is None:
            self._decoy = self.hasher.hash("decoy password, never anyone's")
        return self._decoy

    # ------------------------------------------------------------------ who calls
    def authenticate(self, authorization: Optional[str]) -> Principal:
        """The principal behind an ``Authorization`` header; anonymous when absent."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'", field="Authorization",
                               code="invalid_token")
        token_hash, now = hash_token(token.strip()), self._clock()
        known = self._known.get(token_hash)
        if known is not None and known[1] > now:
            return known[0]
        account = self.catalog.account_by_token_hash(token_hash)
        if account is None:
            raise Unauthorized("this API token is not valid", field="Authorization", code="invalid_token")
        principal = Principal.of(account, via="token")
        if len(self._known) >= KNOWN_TOKENS_MAX:
            self._known.clear()
        self._known[token_hash] = (principal, now + KNOWN_TOKEN_S)
        return principal

    def start_session(self, account: Account) -> str:
        return self._sessions().create(account.id, self.session_ttl_s)

    def session_principal(self, token: str) -> Optional[Principal]:
        """The account signed in with this session cookie; None if the session is gone."""
        session = self._sessions().get(token)
        account = self.catalog.get_account(session.account_id) if session else None
        return Principal.of(account, via="session") if account else None

    def end_session(self, token: str) -> None:
        self._sessions().revoke(token)

    def _sessions(self) -> WebSessions:
        if self.sessions is None:
            raise RuntimeError("this AccountService has no session store")
        return self.sessions


def check_name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not NAME_PATTERN.match(name):
        raise BadRequest("a name is 1-63 letters, digits, spaces, '_', '.' or '-', starting with a letter or digit",
                         field="name", code="bad_name")
    return name
