"""The full-stack catalog: Apache Cassandra, query-first tables (``infra/cassandra/schema.cql``).

Each method is one partition access (a few, in order, where the port asks for more than one read
or write): a video by id (``videos``), a creator's videos newest first (``videos_by_creator``, whole
copies of the videos, clustered by created_at and id descending), counters in their own table
(``video_counters``), accounts and their interactions:

- ``accounts`` (by id) holds every field of an account; ``accounts_by_name`` and
  ``accounts_by_token_hash`` are key-only claims (name or token hash -> id), taken with
  ``INSERT ... IF NOT EXISTS``, so an account's changing fields (password, admin, channel) live in
  one row and an update is one write. A lookup by name or token reads the claim, then the account,
  and checks the account still carries that name or token.
- ``likes`` ((video_id), account_id): a like is an ``IF NOT EXISTS`` insert, an unlike an
  ``IF EXISTS`` delete; only the transaction that applies moves the video's ``likes`` counter.
- ``comments`` (by id) and ``comments_by_video`` (((video_id, parent_id)), created_at DESC, id DESC,
  whole copies): partition (video, '') lists a video's top-level comments, (video, comment id) the
  replies to that comment, each newest first and keyset-paged like ``videos_by_creator``.

A counter cannot join a lightweight transaction or a logged batch, so the likes and comments counters
move in a write of their own after the transaction that decided the change: a process that dies
between the two leaves the counter one change behind (one short after a like or a comment). That is
the only window; a retried like or unlike finds nothing to change and never counts twice.

Every write to ``videos`` is a lightweight transaction (Paxos), so the status compare-and-set is
linearizable and never races a plain write to the same cells. ``videos_by_creator`` is kept in
step after each write by copying the row just written, stamped with that write's own timestamp
(``USING TIMESTAMP writetime(updated_at)``): copies arriving out of order resolve to the newest,
and a late copy is shadowed by a later delete. A process that dies between the two writes leaves
the creator's listing one change behind until the video's next write.

A keyspace made by an earlier Reelhouse is brought up to date on connect (``_migrate``): ``videos``
and ``videos_by_creator`` gain ``visibility`` (null reads as public), and the creators tables
(``creators``, ``creators_by_name``, ``creators_by_token_hash``) become accounts with a channel.

Statements are prepared once; each carries its consistency: LOCAL_QUORUM for reads and plain
writes, LOCAL_SERIAL for the Paxos phase of lightweight transactions (the keyspace uses
NetworkTopologyStrategy, so a second data centre does not join the Paxos round of the first).
"""
from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut, RequestExecutionException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement, dict_factory

from reelhouse.domain.accounts import ACCOUNT_MUTABLE_FIELDS, Account
from reelhouse.domain.interactions import PUBLIC, Comment
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import (
    Catalog, CatalogError, CommentPage, Page, VideoNotFound, decode_page_token, encode_page_token,
)
from reelhouse.settings import Settings
from reelhouse.templates import render_template

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "infra" / "cassandra" / "schema.cql"
HOST = "127.0.0.1"  # one node on loopback; the driver discovers a cluster's other nodes from it
REQUEST_TIMEOUT_S = 15.0
SCHEMA_CHANGE_TIMEOUT_S = 60.0  # ALTER and DROP wait for every node to agree on the schema
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")

JSON_FIELDS = {"media_info", "renditions"}
VIDEO_COLUMNS = (
    "id", "creator_id", "title", "filename", "size", "content_type", "description", "tags", "category",
    "status", "stage", "progress", "reason", "source_bucket", "source_key", "duration_s", "width", "height",
    "media_info", "renditions", "cdn_urls", "visibility", "created_at", "updated_at",
)
ACCOUNT_COLUMNS = ("id", "name", "token_hash", "created_at", "password_hash", "is_admin", "has_channel")
COMMENT_COLUMNS = ("id", "video_id", "author_id", "text", "parent_id", "created_at")
# The tables of the layout before accounts (creators only); `creators` goes last, so while it is
# there the migration is not finished.
OLD_CREATOR_TABLES = ("creators_by_name", "creators_by_token_hash", "creators")
QUORUM, SERIAL = ConsistencyLevel.LOCAL_QUORUM, ConsistencyLevel.LOCAL_SERIAL

if set(VIDEO_COLUMNS) != {field.name for field in dataclasses.fields(Video)}:
    raise ImportError("Video's fields and the Cassandra catalog's columns differ: add the column to "
                      "infra/cassandra/schema.cql and to _migrate for keyspaces made before it")


def schema_statements(keyspace: str, datacenter: str) -> list[str]:
    """The CQL of ``schema.cql`` with the keyspace and data centre filled in, one statement each."""
    for name, value in (("keyspace", keyspace), ("datacenter", datacenter)):
        if not _IDENTIFIER.match(value):
            raise CatalogError(f"the Cassandra {name} {value!r} is not a plain CQL name (letters, digits, _)")
    text = "\n".join(line for line in SCHEMA_FILE.read_text().splitlines() if not line.lstrip().startswith("--"))
    text = render_template(text, {"keyspace": keyspace, "datacenter": datacenter}, SCHEMA_FILE, CatalogError)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


class CassandraCatalog(Catalog):
    engine = "cassandra"

    def __init__(self, settings: Settings) -> None:
        self.keyspace = settings.cassandra_keyspace
        self.address = f"{HOST}:{settings.cassandra_port}"
        statements = schema_statements(self.keyspace, settings.cassandra_datacenter)
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.cassandra_datacenter)),
            consistency_level=QUORUM,
            serial_consistency_level=SERIAL,
            request_timeout=REQUEST_TIMEOUT_S,
            row_factory=dict_factory,
        )
        self._cluster = Cluster(
            [HOST], port=settings.cassandra_port, protocol_version=5,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=5,
        )
        self._by_fields: dict[tuple[str, tuple[str, ...]], PreparedStatement] = {}
        self._lock = threading.Lock()
        try:
            self._session: Session = self._cluster.connect()
            # The node stamps plain writes from the same clock as its Paxos ballots, so a delete
            # always lands after the transaction it follows (a client clock could be a little ahead).
            self._session.use_client_timestamp = False
            for statement in statements:  # CREATE ... IF NOT EXISTS: a no-op once applied
                self._session.execute(statement)
            self._add_missing_columns()
            self._prepare_fixed_statements()
            self._migrate_creators()
        except NoHostAvailable as exc:
            self._cluster.shutdown()
            raise CatalogError(
                f"cannot reach Cassandra at {self.address}: start it with `reelhouse up` "
                f"(REELHOUSE_STACK=full), or choose the SQLite catalog (REELHOUSE_CATALOG_ENGINE=sqlite) ({exc})"
            ) from exc
        except BaseException:
            self._cluster.shutdown()
            raise

    # ------------------------------------------------------------------ migration
    def _add_missing_columns(self) -> None:
        """Columns added since a table was first created: CREATE TABLE IF NOT EXISTS leaves an existing
        table as it is. Only a read on the usual start (``system_schema.columns``); ``ADD IF NOT EXISTS``
        (Cassandra 4.1 and later) keeps two processes that upgrade together from failing each other."""
        for table, column, kind in (("videos", "visibility", "text"), ("videos_by_creator", "visibility", "text")):
            present = self._session.execute(
                "SELECT column_name FROM system_schema.columns "
                "WHERE keyspace_name = %s AND table_name = %s AND column_name = %s",
                [self.keyspace, table, column],
            ).one()
            if present is None:
                self._session.execute(
                    f"ALTER TABLE {self.keyspace}.{table} ADD IF NOT EXISTS {column} {kind}",
                    timeout=SCHEMA_CHANGE_TIMEOUT_S,
                )

    def _table_exists(self, table: str) -> bool:
        return self._session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
            [self.keyspace, table],
        ).one() is not None

    def _migrate_creators(self) -> None:
        """The layout before accounts had ``creators`` (by id, name and token hash): each creator
        becomes an account with a channel, under the same id, name and token, then the old tables go.

        Idempotent, so a process that dies half way, or two processes that start together, finish it
        on a later start: every claim is ``IF NOT EXISTS``, and one already made for the same account
        counts as done. ``creators`` is dropped last, after its copy; it is the only table read whole
        (a one-time scan, paged by the driver). A creator whose name or token an account has taken
        meanwhile stops the migration with nothing dropped: nothing is lost, and the error says who.
        """
        if not self._table_exists("creators"):
            return
        clashes = []
        try:
            scan = SimpleStatement(f"SELECT id, name, token_hash, created_at FROM {self.keyspace}.creators",
                                   fetch_size=1000)
            for row in self._session.execute(scan):
                account = Account(id=row["id"], name=row["name"], token_hash=row["token_hash"],
                                  created_at=row["created_at"], has_channel=True)
                clashes += self._copy_account(account)
        except InvalidRequest:
            if self._table_exists("creators"):
                raise
            return  # another process finished the migration and dropped the table under this scan
        if clashes:
            raise CatalogError(
                f"cannot migrate the creators of keyspace {self.keyspace} to accounts: {'; '.join(clashes)}. "
                "Nothing was dropped; remove the clashing account or creator row, then start again"
            )
        for table in OLD_CREATOR_TABLES:
            self._session.execute(f"DROP TABLE IF EXISTS {self.keyspace}.{table}", timeout=SCHEMA_CHANGE_TIMEOUT_S)

    def _copy_account(self, account: Account) -> list[str]:
        """One migrated creator's claims and row, in create_account's order; what clashed with another
        account (none if all is done). After a clash the later claims are left alone."""
        if not self._claimed(self._claim_name, [account.name, account.id], account.id):
            return [f"the name {account.name!r} of creator {account.id!r} belongs to another account"]
        result = self._run(self._insert_account, _account_to_row(account))
        if not result.was_applied and result.one()["name"] != account.name:
            return [f"the id of creator {account.id!r} ({account.name!r}) belongs to another account"]
        if account.token_hash is not None and not self._claimed(
                self._claim_token, [account.token_hash, account.id], account.id):
            return [f"the token of creator {account.id!r} belongs to another account"]
        return []

    def _claimed(self, claim: PreparedStatement, values: list, account_id: str) -> bool:
        """Takes a claim (``INSERT ... IF NOT EXISTS``); True if it is now ``account_id``'s, by this
        write or an earlier one."""
        result = self._run(claim, values)
        return result.was_applied or result.one()["id"] == account_id

    # ------------------------------------------------------------------ statements
    def _prepare(self, cql: str, serial: bool = False) -> PreparedStatement:
        statement = self._session.prepare(cql)
        statement.consistency_level = QUORUM  # for an LWT: the consistency of its commit
        if serial:
            statement.serial_consistency_level = SERIAL
        return statement

    def _prepare_fixed_statements(self) -> None:
        ks, columns = self.keyspace, ", ".join(VIDEO_COLUMNS)
        marks = ", ".join("?" for _ in VIDEO_COLUMNS)
        self._insert_video = self._prepare(f"INSERT INTO {ks}.videos ({columns}) VALUES ({marks}) IF NOT EXISTS", serial=True)
        self._select_video = self._prepare(f"SELECT {columns} FROM {ks}.videos WHERE id = ?")
        self._select_for_copy = self._prepare(
            f"SELECT {columns}, writetime(updated_at) AS written_at FROM {ks}.videos WHERE id = ?"
        )
        self._insert_copy = self._prepare(
            f"INSERT INTO {ks}.videos_by_creator ({columns}) VALUES ({marks}) USING TIMESTAMP ?"
        )
        self._first_page = self._prepare(f"SELECT {columns} FROM {ks}.videos_by_creator WHERE creator_id = ? LIMIT ?")
        self._next_page = self._prepare(
            f"SELECT {columns} FROM {ks}.videos_by_creator WHERE creator_id = ? AND (created_at, id) < (?, ?) LIMIT ?"
        )
        self._stage_entry = self._prepare(
            f"INSERT INTO {ks}.videos_by_stage (stage, created_at, id) VALUES (?, ?, ?) USING TIMESTAMP ?"
        )
        self._drop_stage_entry = self._prepare(
            f"DELETE FROM {ks}.videos_by_stage USING TIMESTAMP ? WHERE stage = ? AND created_at = ? AND id = ?"
        )
        self._drop_stage_entry_now = self._prepare(
            f"DELETE FROM {ks}.videos_by_stage WHERE stage = ? AND created_at = ? AND id = ?"
        )
        self._stage_backlog = self._prepare(f"SELECT id FROM {ks}.videos_by_stage WHERE stage = ? LIMIT ?")
        self._select_keys = self._prepare(f"SELECT creator_id, created_at FROM {ks}.videos WHERE id = ?")
        self._delete_video = self._prepare(f"DELETE FROM {ks}.videos WHERE id = ? IF EXISTS", serial=True)
        self._delete_copy = self._prepare(
            f"DELETE FROM {ks}.videos_by_creator WHERE creator_id = ? AND created_at = ? AND id = ?"
        )
        # counters
        self._delete_counters = self._prepare(f"DELETE FROM {ks}.video_counters WHERE video_id = ?")
        self._increment = self._prepare(
            f"UPDATE {ks}.video_counters SET value = value + ? WHERE video_id = ? AND name = ?"
        )
        self._select_counters = self._prepare(f"SELECT name, value FROM {ks}.video_counters WHERE video_id = ?")
        self._select_counter = self._prepare(
            f"SELECT value FROM {ks}.video_counters WHERE video_id = ? AND name = ?"
        )
        # accounts
        account_columns, account_marks = ", ".join(ACCOUNT_COLUMNS), ", ".join("?" for _ in ACCOUNT_COLUMNS)
        self._insert_account = self._prepare(
            f"INSERT INTO {ks}.accounts ({account_columns}) VALUES ({account_marks}) IF NOT EXISTS", serial=True
        )
        self._claim_name = self._prepare(
            f"INSERT INTO {ks}.accounts_by_name (name, id) VALUES (?, ?) IF NOT EXISTS", serial=True
        )
        self._claim_token = self._prepare(
            f"INSERT INTO {ks}.accounts_by_token_hash (token_hash, id) VALUES (?, ?) IF NOT EXISTS", serial=True
        )
        # IF id = ? / IF name = ?: a claim is released only by the account that took it, never from one
        # that won it.
        self._release_name = self._prepare(f"DELETE FROM {ks}.accounts_by_name WHERE name = ? IF id = ?", serial=True)
        self._release_id = self._prepare(f"DELETE FROM {ks}.accounts WHERE id = ? IF name = ?", serial=True)
        self._select_account = self._prepare(f"SELECT {account_columns} FROM {ks}.accounts WHERE id = ?")
        self._id_by_name = self._prepare(f"SELECT id FROM {ks}.accounts_by_name WHERE name = ?")
        self._id_by_token = self._prepare(f"SELECT id FROM {ks}.accounts_by_token_hash WHERE token_hash = ?")
        # likes
        self._insert_like = self._prepare(
            f"INSERT INTO {ks}.likes (video_id, account_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS", serial=True
        )
        self._delete_like = self._prepare(
            f"DELETE FROM {ks}.likes WHERE video_id = ? AND account_id = ? IF EXISTS", serial=True
        )
        self._select_like = self._prepare(f"SELECT account_id FROM {ks}.likes WHERE video_id = ? AND account_id = ?")
        self._delete_likes = self._prepare(f"DELETE FROM {ks}.likes WHERE video_id = ?")
        # comments
        comment_columns, comment_marks = ", ".join(COMMENT_COLUMNS), ", ".join("?" for _ in COMMENT_COLUMNS)
        self._insert_comment = self._prepare(
            f"INSERT INTO {ks}.comments ({comment_columns}) VALUES ({comment_marks}) IF NOT EXISTS", serial=True
        )
        self._select_comment = self._prepare(f"SELECT {comment_columns} FROM {ks}.comments WHERE id = ?")
        self._delete_comment = self._prepare(f"DELETE FROM {ks}.comments WHERE id = ? IF EXISTS", serial=True)
        self._delete_comment_now = self._prepare(f"DELETE FROM {ks}.comments WHERE id = ?")
        self._insert_comment_copy = self._prepare(
            f"INSERT INTO {ks}.comments_by_video ({comment_columns}) VALUES ({comment_marks})"
        )
        self._first_comments = self._prepare(
            f"SELECT {comment_columns} FROM {ks}.comments_by_video WHERE video_id = ? AND parent_id = ? LIMIT ?"
        )
        self._next_comments = self._prepare(
            f"SELECT {comment_columns} FROM {ks}.comments_by_video "
            "WHERE video_id = ? AND parent_id = ? AND (created_at, id) < (?, ?) LIMIT ?"
        )
        self._comment_ids = self._prepare(f"SELECT id FROM {ks}.comments_by_video WHERE video_id = ? AND parent_id = ?")
        self._delete_comment_copy = self._prepare(
            f"DELETE FROM {ks}.comments_by_video WHERE video_id = ? AND parent_id = ? AND created_at = ? AND id = ?"
        )
        self._delete_comment_listing = self._prepare(
            f"DELETE FROM {ks}.comments_by_video WHERE video_id = ? AND parent_id = ?"
        )

    def _conditional_update(self, kind: str, names: tuple[str, ...]) -> PreparedStatement:
        """``UPDATE videos SET <names>, updated_at`` as a lightweight transaction, prepared once per set of names.

        ``names`` were checked against MUTABLE_FIELDS (or are fixed here): never user input.
        """
        key = (kind, names)
        with self._lock:
            if key not in self._by_fields:
                assignments = ", ".join(f"{name} = ?" for name in (*names, "updated_at"))
                condition = "IF status = ? AND stage = ?" if kind == "status" else "IF EXISTS"
                self._by_fields[key] = self._prepare(
                    f"UPDATE {self.keyspace}.videos SET {assignments} WHERE id = ? {condition}", serial=True
                )
            return self._by_fields[key]

    def _account_update(self, names: tuple[str, ...]) -> PreparedStatement:
        """``UPDATE accounts SET <names> WHERE id = ? IF EXISTS``, prepared once per set of names
        (checked against ACCOUNT_MUTABLE_FIELDS: never user input)."""
        key = ("account", names)
        with self._lock:
            if key not in self._by_fields:
                assignments = ", ".join(f"{name} = ?" for name in names)
                self._by_fields[key] = self._prepare(
                    f"UPDATE {self.keyspace}.accounts SET {assignments} WHERE id = ? IF EXISTS", serial=True
                )
            return self._by_fields[key]

    def _run(self, statement: PreparedStatement, values: Optional[list]) -> Any:
        try:
            return self._session.execute(statement, values)
        except (RequestExecutionException, OperationTimedOut, NoHostAvailable) as exc:
            # A timed-out lightweight transaction may still apply: the caller cannot know, so says so.
            raise CatalogError(f"Cassandra at {self.address} did not complete the request ({exc}); it may have applied") from exc

    def close(self) -> None:
        self._cluster.shutdown()

    # ------------------------------------------------------------------ videos
    def create_video(self, video: Video) -> None:
        row = _video_to_row(video)
        if not self._run(self._insert_video, [row[name] for name in VIDEO_COLUMNS]).was_applied:
            raise CatalogError(f"a video with id {video.id!r} already exists")
        self._copy_to_creator_listing(video.id, stage_changed=True)

    def get_video(self, video_id: str) -> Optional[Video]:
        row = self._run(self._select_video, [video_id]).one()
        return _row_to_video(row) if row else None

    def videos_by_creator(self, creator_id: str, limit: int = 20, page_token: Optional[str] = None) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        # One more row than asked tells whether another page exists. Keyset paging (the position
        # after the last video) rather than Cassandra's paging state: a token stays valid across
        # restarts and schema changes, and the same token works against every catalog engine.
        if page_token is None:
            rows = list(self._run(self._first_page, [creator_id, limit + 1]))
        else:
            after_created_at, after_id = decode_page_token(page_token)
            rows = list(self._run(self._next_page, [creator_id, after_created_at, after_id, limit + 1]))
        items = [_row_to_video(row) for row in rows[:limit]]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return Page(items=items, next_token=next_token)

    def compare_and_set_status(
        self,
        video_id: str,
        expect_status: VideoStatus,
        expect_stage: Optional[Stage],
        new_status: VideoStatus,
        new_stage: Optional[Stage],
        **fields,
    ) -> bool:
        expect_status, expect_stage = VideoStatus(expect_status), _stage(expect_stage)
        new_status, new_stage = VideoStatus(new_status), _stage(new_stage)
        check_transition(expect_status, expect_stage, new_status, new_stage)
        columns = {"status": new_status.value, "stage": _stage_value(new_stage), **_serialise(fields)}
        statement = self._conditional_update("status", tuple(columns))
        values = [*columns.values(), time.time(), video_id, expect_status.value, _stage_value(expect_stage)]
        if not self._run(statement, values).was_applied:
            return False
        self._copy_to_creator_listing(video_id, stage_changed=True)
        return True

    def update_video(self, video_id: str, **fields) -> None:
        columns = _serialise(fields)
        statement = self._conditional_update("exists", tuple(columns))
        if not self._run(statement, [*columns.values(), time.time(), video_id]).was_applied:
            raise VideoNotFound(f"no video with id {video_id!r}")
        self._copy_to_creator_listing(video_id)

    def delete_video(self, video_id: str) -> None:
        keys = self._run(self._select_keys, [video_id]).one()
        if keys is not None:
            self._run(self._delete_video, [video_id])
            # After the video's last write, so this tombstone shadows any copy still on its way.
            self._run(self._delete_copy, [keys["creator_id"], keys["created_at"], video_id])
            for stage in Stage:
                self._run(self._drop_stage_entry_now, [stage.value, keys["created_at"], video_id])
        self._delete_interactions(video_id)
        # A deleted counter cannot be counted again (Cassandra's rule): fine, video ids are never reused.
        self._run(self._delete_counters, [video_id])

    def _delete_interactions(self, video_id: str) -> None:
        """The video's likes (one partition) and comments: each top-level comment's replies (their
        listing partition and their rows), then the top-level comments likewise. Plain deletes: the
        video is gone, so nothing decides on these rows any more."""
        self._run(self._delete_likes, [video_id])
        for comment in self._run(self._comment_ids, [video_id, ""]):
            for reply in self._run(self._comment_ids, [video_id, comment["id"]]):
                self._run(self._delete_comment_now, [reply["id"]])
            self._run(self._delete_comment_listing, [video_id, comment["id"]])
            self._run(self._delete_comment_now, [comment["id"]])
        self._run(self._delete_comment_listing, [video_id, ""])

    def _copy_to_creator_listing(self, video_id: str, stage_changed: bool = False) -> None:
        """Copy the row to the creator's listing and, after a status change, move its stage entry:
        one unlogged batch (one commit-log sync), every write stamped with the row's own timestamp."""
        row = self._run(self._select_for_copy, [video_id]).one()
        if row is None:  # deleted meanwhile: its listing entry is (or will be) deleted too
            return
        written_at = row["written_at"]
        batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=QUORUM)
        batch.add(self._insert_copy, [*(row[name] for name in VIDEO_COLUMNS), written_at])
        if stage_changed:
            current = row["stage"] if row["status"] == VideoStatus.PROCESSING.value else None
            for stage in Stage:
                if stage.value == current:
                    batch.add(self._stage_entry, [stage.value, row["created_at"], video_id, written_at])
                else:
                    batch.add(self._drop_stage_entry, [written_at, stage.value, row["created_at"], video_id])
        self._run(batch, None)

    def videos_in_stage(self, stage: Stage, limit: int = 100) -> list[Video]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        stage = Stage(stage)
        videos = []
        # The index may be a step behind a video (a process died between its two writes): each
        # video is read fresh, and one that has moved on is left out.
        for entry in self._run(self._stage_backlog, [stage.value, limit]):
            video = self.get_video(entry["id"])
            if video is not None and video.status == VideoStatus.PROCESSING and video.stage == stage:
                videos.append(video)
        return videos

    # ------------------------------------------------------------------ counters
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None:
        self._run(self._increment, [int(amount), video_id, counter])

    def set_counter(self, video_id: str, counter: str, value: int) -> None:
        """A counter cannot be set, only moved: read it and move it by the difference. Right for the
        one writer the port allows per counter; two at once could both add the same difference."""
        row = self._run(self._select_counter, [video_id, counter]).one()
        current = row["value"] if row is not None else None
        if current != int(value):  # an absent counter is moved even by 0, so that it shows as 0
            self._run(self._increment, [int(value) - (current or 0), video_id, counter])

    def counters(self, video_id: str) -> dict[str, int]:
        return {row["name"]: row["value"] for row in self._run(self._select_counters, [video_id])}

    # ------------------------------------------------------------------ accounts
    def create_account(self, account: Account) -> None:
        """Claims the name, then the id (the ``accounts`` row), then the token hash if the account has
        one, each with INSERT ... IF NOT EXISTS; a refused claim releases the ones this call took. The
        token comes last: nobody signs in before the name and id are the account's. A name claim held
        by this same id without its account (an earlier try that died after it) is taken over."""
        row = _account_to_row(account)
        named = self._run(self._claim_name, [account.name, account.id])
        took_name = named.was_applied
        if not took_name and named.one()["id"] != account.id:
            raise CatalogError(f"the account name {account.name!r} is taken")
        if not self._run(self._insert_account, row).was_applied:
            if took_name:
                self._run(self._release_name, [account.name, account.id])
            raise CatalogError(f"an account with id {account.id!r} already exists")
        if account.token_hash is not None and not self._run(
                self._claim_token, [account.token_hash, account.id]).was_applied:
            self._run(self._release_id, [account.id, account.name])
            self._run(self._release_name, [account.name, account.id])
            raise CatalogError("another account has the same token; issue a new token")

    def get_account(self, account_id: str) -> Optional[Account]:
        row = self._run(self._select_account, [account_id]).one()
        return Account(**{name: row[name] for name in ACCOUNT_COLUMNS}) if row else None

    def account_by_token_hash(self, token_hash: str) -> Optional[Account]:
        return self._account_by_claim(self._id_by_token, "token_hash", token_hash)

    def account_by_name(self, name: str) -> Optional[Account]:
        return self._account_by_claim(self._id_by_name, "name", name)

    def _account_by_claim(self, lookup: PreparedStatement, field: str, value: str) -> Optional[Account]:
        """The claim, then the account it points at, if that account still carries ``value``: a
        claim taken by a create_account that then fails points at another account until released."""
        claim = self._run(lookup, [value]).one()
        account = self.get_account(claim["id"]) if claim else None
        return account if account is not None and getattr(account, field) == value else None

    def update_account(self, account_id: str, **fields) -> None:
        """One lightweight transaction on ``accounts`` (IF EXISTS); the claims hold only keys, so
        they never change."""
        unknown = set(fields) - ACCOUNT_MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of an account: only "
                             f"{', '.join(sorted(ACCOUNT_MUTABLE_FIELDS))} may change")
        if not fields:
            if self.get_account(account_id) is None:
                raise CatalogError(f"no account with id {account_id!r}")
            return
        names = tuple(sorted(fields))  # the same fields in another order reuse the same statement
        values = [bool(fields[name]) if name in ("is_admin", "has_channel") else fields[name] for name in names]
        if not self._run(self._account_update(names), [*values, account_id]).was_applied:
            raise CatalogError(f"no account with id {account_id!r}")

    # ------------------------------------------------------------------ likes
    def set_like(self, video_id: str, account_id: str, liked: bool) -> bool:
        """``INSERT ... IF NOT EXISTS`` or ``DELETE ... IF EXISTS``: of any number of tries, one
        applies, and only it moves the ``likes`` counter (the crash window: module docstring)."""
        if liked:
            changed = self._run(self._insert_like, [video_id, account_id, time.time()]).was_applied
        else:
            changed = self._run(self._delete_like, [video_id, account_id]).was_applied
        if changed:
            self._run(self._increment, [1 if liked else -1, video_id, "likes"])
        return changed

    def is_liked(self, video_id: str, account_id: str) -> bool:
        return self._run(self._select_like, [video_id, account_id]).one() is not None

    # ------------------------------------------------------------------ comments
    def add_comment(self, comment: Comment) -> None:
        """The ``comments`` row (IF NOT EXISTS decides a reused id), then its listing copy, then the
        counter. A process that dies after the first write leaves the comment readable by id but not
        listed nor counted; one that dies after the second, listed but not counted."""
        row = _comment_to_row(comment)
        if not self._run(self._insert_comment, row).was_applied:
            raise CatalogError(f"a comment with id {comment.id!r} already exists")
        self._run(self._insert_comment_copy, row)
        self._run(self._increment, [1, comment.video_id, "comments"])

    def get_comment(self, comment_id: str) -> Optional[Comment]:
        row = self._run(self._select_comment, [comment_id]).one()
        return _row_to_comment(row) if row else None

    def comments_of(self, video_id: str, parent_id: Optional[str] = None, limit: int = 20,
                    page_token: Optional[str] = None) -> CommentPage:
        """One partition of ``comments_by_video``, keyset-paged as videos_by_creator is."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if page_token is None:
            rows = list(self._run(self._first_comments, [video_id, parent_id or "", limit + 1]))
        else:
            after_created_at, after_id = decode_page_token(page_token)
            rows = list(self._run(self._next_comments, [video_id, parent_id or "", after_created_at, after_id, limit + 1]))
        items = [_row_to_comment(row) for row in rows[:limit]]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return CommentPage(items=items, next_token=next_token)

    def delete_comment(self, comment_id: str) -> list[str]:
        """The replies first (the listing partition (video, comment id) names them), then the
        comment, each by ``DELETE ... IF EXISTS``: a delete that dies half way is finished by the
        next, and deletes racing each other count each comment once. Then the listing copies, then
        the counter, down by the comments this call deleted. A reply added while its parent is
        deleted may outlive it (readable by id, unlisted, counted)."""
        row = self._run(self._select_comment, [comment_id]).one()
        if row is None:
            return []
        video_id = row["video_id"]
        replies = [reply["id"] for reply in self._run(self._comment_ids, [video_id, comment_id])]
        deleted = [reply for reply in replies if self._run(self._delete_comment, [reply]).was_applied]
        if self._run(self._delete_comment, [comment_id]).was_applied:
            deleted.insert(0, comment_id)
        if replies:
            self._run(self._delete_comment_listing, [video_id, comment_id])
        self._run(self._delete_comment_copy, [video_id, row["parent_id"] or "", row["created_at"], comment_id])
        if deleted:
            self._run(self._increment, [-len(deleted), video_id, "comments"])
        return deleted

# ---------------------------------------------------------------------- rows
def _stage(stage: Optional[Stage]) -> Optional[Stage]:
    return Stage(stage) if stage else None


def _stage_value(stage: Optional[Stage]) -> Optional[str]:
    return stage.value if stage else None


def _column_value(name: str, value: Any) -> Any:
    if name in JSON_FIELDS:
        return json.dumps(value)
    if name == "tags":
        return list(value)
    if name == "cdn_urls":
        return {str(key): str(url) for key, url in value.items()}
    return value


def _serialise(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(sorted(unknown))}: only {', '.join(sorted(MUTABLE_FIELDS))} may change"
        )
    # Sorted: the same fields in another order reuse the same prepared statement.
    return {name: _column_value(name, fields[name]) for name in sorted(fields)}


def _video_to_row(video: Video) -> dict[str, Any]:
    data = video.to_dict()
    return {name: _column_value(name, data[name]) for name in VIDEO_COLUMNS}


def _account_to_row(account: Account) -> list[Any]:
    return [getattr(account, name) for name in ACCOUNT_COLUMNS]


def _comment_to_row(comment: Comment) -> list[Any]:
    """In COMMENT_COLUMNS order; a top-level comment's parent is '' (a partition key cannot be null)."""
    return [comment.id, comment.video_id, comment.author_id, comment.text, comment.parent_id or "",
            comment.created_at]


def _row_to_comment(row: dict[str, Any]) -> Comment:
    data = {name: row[name] for name in COMMENT_COLUMNS}
    data["parent_id"] = data["parent_id"] or None
    return Comment(**data)


def _row_to_video(row: dict[str, Any]) -> Video:
    data = {name: row[name] for name in VIDEO_COLUMNS}
    data["visibility"] = data["visibility"] or PUBLIC  # a row written before visibility existed
    for name in JSON_FIELDS:
        data[name] = json.loads(data[name]) if data[name] is not None else ([] if name == "renditions" else {})
    # Cassandra stores an empty collection as no value at all.
    data["tags"] = list(data["tags"] or [])
    data["cdn_urls"] = dict(data["cdn_urls"] or {})
    return Video.from_dict(data)
