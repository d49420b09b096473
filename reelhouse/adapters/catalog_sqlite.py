"""The embedded catalog: one SQLite file in WAL mode.

Every method is one query-first access by key, mirroring the Cassandra tables
that replace it in the ``full`` stack: a video by id, a creator's videos newest
first (an index standing in for the clustering order), counters in their own
table, creators by id / token hash / name.

Each thread gets its own connection (SQLite connections must not be shared
between concurrent threads); WAL lets readers run while one writer writes, and
``busy_timeout`` makes writers from other threads or processes wait their turn
instead of failing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Optional

from reelhouse.domain.accounts import ACCOUNT_MUTABLE_FIELDS, Account
from reelhouse.domain.interactions import Comment
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import Catalog, CatalogError, CommentPage, Page, VideoNotFound, decode_page_token, encode_page_token

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000

# Fields stored as JSON text; the rest map to plain columns.
JSON_FIELDS = {"tags", "media_info", "renditions", "cdn_urls"}

VIDEO_COLUMNS = (
    "id", "creator_id", "title", "filename", "size", "content_type", "description", "tags", "category",
    "status", "stage", "progress", "reason", "source_bucket", "source_key", "duration_s", "width", "height",
    "media_info", "renditions", "cdn_urls", "visibility", "created_at", "updated_at",
)
ACCOUNT_COLUMNS = ("id", "name", "token_hash", "created_at", "password_hash", "is_admin", "has_channel")
COMMENT_COLUMNS = ("id", "video_id", "author_id", "text", "parent_id", "created_at")

if set(VIDEO_COLUMNS) != {field.name for field in dataclasses.fields(Video)}:
    raise ImportError("Video's fields and the SQLite catalog's columns differ: add a column and bump SCHEMA_VERSION")

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    id            TEXT PRIMARY KEY,
    creator_id    TEXT NOT NULL,
    title         TEXT NOT NULL,
    filename      TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    description   TEXT NOT NULL,
    tags          TEXT NOT NULL,
    category      TEXT NOT NULL,
    status        TEXT NOT NULL,
    stage         TEXT,
    progress      REAL NOT NULL,
    reason        TEXT,
    source_bucket TEXT NOT NULL,
    source_key    TEXT NOT NULL,
    duration_s    REAL,
    width         INTEGER,
    height        INTEGER,
    media_info    TEXT NOT NULL,
    renditions    TEXT NOT NULL,
    cdn_urls      TEXT NOT NULL,
    visibility    TEXT NOT NULL DEFAULT 'public',
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS videos_by_creator ON videos (creator_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS videos_by_stage ON videos (stage, created_at, id) WHERE status = 'processing';
CREATE TABLE IF NOT EXISTS video_counters (
    video_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    INTEGER NOT NULL,
    PRIMARY KEY (video_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    token_hash    TEXT UNIQUE,
    created_at    REAL NOT NULL,
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    has_channel   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS likes (
    video_id   TEXT NOT NULL,
    account_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (video_id, account_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS comments (
    id         TEXT PRIMARY KEY,
    video_id   TEXT NOT NULL,
    author_id  TEXT NOT NULL,
    text       TEXT NOT NULL,
    parent_id  TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_by_video ON comments (video_id, parent_id, created_at DESC, id DESC);
"""

# From schema version 1 (creators, videos without visibility) to 2: creators become accounts with a
# channel, under the same ids, names and tokens. Runs in the transaction that creates version 2's objects.
MIGRATIONS = {
    2: (
        "ALTER TABLE videos ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'",
        "<schema>",
        "INSERT INTO accounts (id, name, token_hash, created_at, has_channel) "
        "SELECT id, name, token_hash, created_at, 1 FROM creators",
        "DROP TABLE creators",
    ),
}
SCHEMA_OBJECTS = re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA)


class _ThreadConnection:
    """Holds one thread's connection; weak-referenceable so ``close`` can find it
    while a finished thread's connection is still freed with the thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.pid = os.getpid()


class SQLiteCatalog(Catalog):
    engine = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open_connections: "weakref.WeakSet[_ThreadConnection]" = weakref.WeakSet()
        # Connections inherited across a fork belong to the parent: never use or close them here.
        self._inherited: list[_ThreadConnection] = []
        self._closed = False
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so that ``close`` may close other threads' connections;
        # each connection is still used by the one thread that opened it.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise CatalogError(f"the SQLite catalog at {self.path} is closed")
        holder: Optional[_ThreadConnection] = getattr(self._local, "holder", None)
        if holder is not None and holder.pid != os.getpid():
            self._inherited.append(holder)
            holder = None
        if holder is None:
            holder = _ThreadConnection(self._connect())
            self._local.holder = holder
            self._open_connections.add(holder)
        return holder.connection

    def _create_schema(self) -> None:
        connection = self._conn()
        # WAL is a property of the file: set once, every later connection uses it.
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise CatalogError(f"could not put {self.path} in WAL mode (journal_mode is {mode})")
        if self._schema_in_place(connection):
            return  # the usual start: no write lock, so a process starting never waits on busy writers
        # IMMEDIATE takes the write lock first, so processes opening a new file together don't collide.
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path} has catalog schema version {version}, newer than this Reelhouse "
                    f"understands ({SCHEMA_VERSION}); upgrade Reelhouse or point it at another file"
                )
            # A new file gets the schema; an older one its migrations, then whatever objects it still lacks
            # (every statement of SCHEMA is IF NOT EXISTS).
            steps = [] if version == 0 else \
                [step for target in range(version + 1, SCHEMA_VERSION + 1) for step in MIGRATIONS[target]]
            steps.append("<schema>")
            for step in steps:
                for statement in (SCHEMA.split(";") if step == "<schema>" else [step]):
                    if statement.strip():
                        connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    @staticmethod
    def _schema_in_place(connection: sqlite3.Connection) -> bool:
        """This version's schema is all there already (a read; every statement is ``IF NOT EXISTS``)."""
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return False
        present = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        return set(SCHEMA_OBJECTS) <= present

    def close(self) -> None:
        self._closed = True
        for holder in list(self._open_connections):
            if holder.pid == os.getpid():
                holder.connection.close()

    # ------------------------------------------------------------------ videos
    def create_video(self, video: Video) -> None:
        row = _video_to_row(video)
        placeholders = ", ".join("?" for _ in VIDEO_COLUMNS)
        try:
            self._conn().execute(
                f"INSERT INTO videos ({', '.join(VIDEO_COLUMNS)}) VALUES ({placeholders})",
                [row[name] for name in VIDEO_COLUMNS],
            )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"a video with id {video.id!r} already exists") from exc

    def get_video(self, video_id: str) -> Optional[Video]:
        row = self._conn().execute(
            f"SELECT {', '.join(VIDEO_COLUMNS)} FROM videos WHERE id = ?", (video_id,)
        ).fetchone()
        return _row_to_video(row) if row else None

    def videos_by_creator(self, creator_id: str, limit: int = 20, page_token: Optional[str] = None) -> Page:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        columns = ", ".join(VIDEO_COLUMNS)
        # One more row than asked tells whether another page exists.
        if page_token is None:
            rows = self._conn().execute(
                f"SELECT {columns} FROM videos WHERE creator_id = ? "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (creator_id, limit + 1),
            ).fetchall()
        else:
            after_created_at, after_id = decode_page_token(page_token)
            rows = self._conn().execute(
                f"SELECT {columns} FROM videos WHERE creator_id = ? AND (created_at, id) < (?, ?) "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (creator_id, after_created_at, after_id, limit + 1),
            ).fetchall()
        items = [_row_to_video(row) for row in rows[:limit]]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return Page(items=items, next_token=next_token)

    def videos_in_stage(self, stage: Stage, limit: int = 100) -> list[Video]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        rows = self._conn().execute(
            f"SELECT {', '.join(VIDEO_COLUMNS)} FROM videos WHERE status = 'processing' AND stage = ? "
            "ORDER BY created_at, id LIMIT ?",
            (Stage(stage).value, limit),
        ).fetchall()
        return [_row_to_video(row) for row in rows]

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
        assignments, values = _assignments({"status": new_status.value, "stage": _stage_value(new_stage), **_serialise(fields)})
        cursor = self._conn().execute(
            f"UPDATE videos SET {assignments} WHERE id = ? AND status = ? AND stage IS ?",
            [*values, video_id, expect_status.value, _stage_value(expect_stage)],
        )
        return cursor.rowcount == 1

    def update_video(self, video_id: str, **fields) -> None:
        assignments, values = _assignments(_serialise(fields))
        cursor = self._conn().execute(f"UPDATE videos SET {assignments} WHERE id = ?", [*values, video_id])
        if cursor.rowcount == 0:
            raise VideoNotFound(f"no video with id {video_id!r}")

    def delete_video(self, video_id: str) -> None:
        connection = self._conn()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            connection.execute("DELETE FROM video_counters WHERE video_id = ?", (video_id,))
            connection.execute("DELETE FROM likes WHERE video_id = ?", (video_id,))
            connection.execute("DELETE FROM comments WHERE video_id = ?", (video_id,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ counters
    def increment(self, video_id: str, counter: str, amount: int = 1) -> None:
        self._conn().execute(
            "INSERT INTO video_counters (video_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (video_id, name) DO UPDATE SET value = value + excluded.value",
            (video_id, counter, int(amount)),
        )

    def set_counter(self, video_id: str, counter: str, value: int) -> None:
        self._conn().execute(
            "INSERT INTO video_counters (video_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (video_id, name) DO UPDATE SET value = excluded.value",
            (video_id, counter, int(value)),
        )

    def counters(self, video_id: str) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT name, value FROM video_counters WHERE video_id = ?", (video_id,)
        ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------------ accounts
    def create_account(self, account: Account) -> None:
        row = _account_to_row(account)
        try:
            self._conn().execute(
                f"INSERT INTO accounts ({', '.join(ACCOUNT_COLUMNS)}) VALUES ({', '.join('?' for _ in ACCOUNT_COLUMNS)})",
                row,
            )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(
                f"an account with id {account.id!r}, name {account.name!r} or the same token already exists"
            ) from exc

    def get_account(self, account_id: str) -> Optional[Account]:
        return self._account_where("id", account_id)

    def account_by_token_hash(self, token_hash: str) -> Optional[Account]:
        return self._account_where("token_hash", token_hash)

    def account_by_name(self, name: str) -> Optional[Account]:
        return self._account_where("name", name)

    def update_account(self, account_id: str, **fields) -> None:
        _check_account_fields(fields)
        if not fields:
            return
        cursor = self._conn().execute(
            f"UPDATE accounts SET {', '.join(f'{name} = ?' for name in fields)} WHERE id = ?",
            [*fields.values(), account_id],
        )
        if cursor.rowcount == 0:
            raise CatalogError(f"no account with id {account_id!r}")

    def _account_where(self, column: str, value: str) -> Optional[Account]:
        # ``column`` is one of three names fixed above, never user input.
        row = self._conn().execute(
            f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM accounts WHERE {column} = ?", (value,)
        ).fetchone()
        return Account(**dict(zip(ACCOUNT_COLUMNS, row))) if row else None

    # ------------------------------------------------------------------ likes, comments
    def set_like(self, video_id: str, account_id: str, liked: bool) -> bool:
        with self._transaction() as connection:
            if liked:
                changed = connection.execute(
                    "INSERT OR IGNORE INTO likes (video_id, account_id, created_at) VALUES (?, ?, ?)",
                    (video_id, account_id, time.time()),
                ).rowcount == 1
            else:
                changed = connection.execute(
                    "DELETE FROM likes WHERE video_id = ? AND account_id = ?", (video_id, account_id)
                ).rowcount == 1
            if changed:
                self._count(connection, video_id, "likes", 1 if liked else -1)
            return changed

    def is_liked(self, video_id: str, account_id: str) -> bool:
        return self._conn().execute(
            "SELECT 1 FROM likes WHERE video_id = ? AND account_id = ?", (video_id, account_id)
        ).fetchone() is not None

    def add_comment(self, comment: Comment) -> None:
        row = _comment_to_row(comment)
        with self._transaction() as connection:
            try:
                connection.execute(
                    f"INSERT INTO comments ({', '.join(COMMENT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in COMMENT_COLUMNS)})", row,
                )
            except sqlite3.IntegrityError as exc:
                raise CatalogError(f"a comment with id {comment.id!r} already exists") from exc
            self._count(connection, comment.video_id, "comments", 1)

    def get_comment(self, comment_id: str) -> Optional[Comment]:
        row = self._conn().execute(
            f"SELECT {', '.join(COMMENT_COLUMNS)} FROM comments WHERE id = ?", (comment_id,)
        ).fetchone()
        return _row_to_comment(row) if row else None

    def comments_of(self, video_id: str, parent_id: Optional[str] = None, limit: int = 20,
                    page_token: Optional[str] = None) -> CommentPage:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        columns, after = ", ".join(COMMENT_COLUMNS), ""
        values: list[Any] = [video_id, parent_id or ""]
        if page_token is not None:
            after = "AND (created_at, id) < (?, ?) "
            values += list(decode_page_token(page_token))
        rows = self._conn().execute(
            f"SELECT {columns} FROM comments WHERE video_id = ? AND parent_id = ? {after}"
            "ORDER BY created_at DESC, id DESC LIMIT ?", [*values, limit + 1],
        ).fetchall()
        items = [_row_to_comment(row) for row in rows[:limit]]
        next_token = encode_page_token(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return CommentPage(items=items, next_token=next_token)

    def delete_comment(self, comment_id: str) -> list[str]:
        with self._transaction() as connection:
            row = connection.execute("SELECT video_id FROM comments WHERE id = ?", (comment_id,)).fetchone()
            if row is None:
                return []
            ids = [comment_id] + [reply for (reply,) in connection.execute(
                "SELECT id FROM comments WHERE parent_id = ?", (comment_id,))]
            connection.execute(
                f"DELETE FROM comments WHERE id IN ({', '.join('?' for _ in ids)})", ids)
            self._count(connection, row[0], "comments", -len(ids))
            return ids

    @staticmethod
    def _count(connection: sqlite3.Connection, video_id: str, counter: str, amount: int) -> None:
        connection.execute(
            "INSERT INTO video_counters (video_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (video_id, name) DO UPDATE SET value = value + excluded.value",
            (video_id, counter, int(amount)),
        )

    @contextlib.contextmanager
    def _transaction(self):
        connection = self._conn()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


# ---------------------------------------------------------------------- rows
def _stage(stage: Optional[Stage]) -> Optional[Stage]:
    return Stage(stage) if stage else None


def _stage_value(stage: Optional[Stage]) -> Optional[str]:
    return stage.value if stage else None


def _serialise(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(
            f"cannot update {', '.join(sorted(unknown))}: only {', '.join(sorted(MUTABLE_FIELDS))} may change"
        )
    return {name: json.dumps(value) if name in JSON_FIELDS else value for name, value in fields.items()}


def _assignments(columns: dict[str, Any]) -> tuple[str, list[Any]]:
    """``SET`` text and values; names are checked against MUTABLE_FIELDS (or fixed) before they get here."""
    columns = {**columns, "updated_at": time.time()}
    return ", ".join(f"{name} = ?" for name in columns), list(columns.values())


def _check_account_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - ACCOUNT_MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))} of an account: only "
                         f"{', '.join(sorted(ACCOUNT_MUTABLE_FIELDS))} may change")


def _account_to_row(account: Account) -> list[Any]:
    return [getattr(account, name) for name in ACCOUNT_COLUMNS]


def _comment_to_row(comment: Comment) -> list[Any]:
    return [comment.id, comment.video_id, comment.author_id, comment.text, comment.parent_id or "",
            comment.created_at]


def _row_to_comment(row: tuple) -> Comment:
    data = dict(zip(COMMENT_COLUMNS, row))
    data["parent_id"] = data["parent_id"] or None
    return Comment(**data)


def _video_to_row(video: Video) -> dict[str, Any]:
    data = video.to_dict()
    return {name: json.dumps(data[name]) if name in JSON_FIELDS else data[name] for name in VIDEO_COLUMNS}


def _row_to_video(row: tuple) -> Video:
    data = {name: json.loads(value) if name in JSON_FIELDS else value for name, value in zip(VIDEO_COLUMNS, row)}
    return Video.from_dict(data)
