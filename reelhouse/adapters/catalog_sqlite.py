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

from reelhouse.domain.creators import Creator
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import Catalog, CatalogError, Page, VideoNotFound, decode_page_token, encode_page_token

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

# Fields stored as JSON text; the rest map to plain columns.
JSON_FIELDS = {"tags", "media_info", "renditions", "cdn_urls"}

VIDEO_COLUMNS = (
    "id", "creator_id", "title", "filename", "size", "content_type", "description", "tags", "category",
    "status", "stage", "progress", "reason", "source_bucket", "source_key", "duration_s", "width", "height",
    "media_info", "renditions", "cdn_urls", "created_at", "updated_at",
)

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
CREATE TABLE IF NOT EXISTS creators (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
"""
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
            for statement in SCHEMA.split(";"):
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

    def counters(self, video_id: str) -> dict[str, int]:
        rows = self._conn().execute(
            "SELECT name, value FROM video_counters WHERE video_id = ?", (video_id,)
        ).fetchall()
        return dict(rows)

    # ------------------------------------------------------------------ creators
    def create_creator(self, creator: Creator) -> None:
        try:
            self._conn().execute(
                "INSERT INTO creators (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
                (creator.id, creator.name, creator.token_hash, creator.created_at),
            )
        except sqlite3.IntegrityError as exc:
            raise CatalogError(
                f"a creator with id {creator.id!r}, name {creator.name!r} or the same token already exists"
            ) from exc

    def get_creator(self, creator_id: str) -> Optional[Creator]:
        return self._creator_where("id", creator_id)

    def creator_by_token_hash(self, token_hash: str) -> Optional[Creator]:
        return self._creator_where("token_hash", token_hash)

    def creator_by_name(self, name: str) -> Optional[Creator]:
        return self._creator_where("name", name)

    def _creator_where(self, column: str, value: str) -> Optional[Creator]:
        # ``column`` is one of three names fixed above, never user input.
        row = self._conn().execute(
            f"SELECT id, name, token_hash, created_at FROM creators WHERE {column} = ?", (value,)
        ).fetchone()
        return Creator(*row) if row else None


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


def _video_to_row(video: Video) -> dict[str, Any]:
    data = video.to_dict()
    return {name: json.dumps(data[name]) if name in JSON_FIELDS else data[name] for name in VIDEO_COLUMNS}


def _row_to_video(row: tuple) -> Video:
    data = {name: json.loads(value) if name in JSON_FIELDS else value for name, value in zip(VIDEO_COLUMNS, row)}
    return Video.from_dict(data)
