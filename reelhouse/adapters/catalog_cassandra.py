"""The full-stack catalog: Apache Cassandra, query-first tables (``infra/cassandra/schema.cql``).

Each method is one partition access: a video by id (``videos``), a creator's videos newest first
(``videos_by_creator``, whole copies of the videos, clustered by created_at and id descending),
counters in their own table, and creators by id, name and token hash.

Every write to ``videos`` is a lightweight transaction (Paxos), so the status compare-and-set is
linearizable and never races a plain write to the same cells. ``videos_by_creator`` is kept in
step after each write by copying the row just written, stamped with that write's own timestamp
(``USING TIMESTAMP writetime(updated_at)``): copies arriving out of order resolve to the newest,
and a late copy is shadowed by a later delete. A process that dies between the two writes leaves
the creator's listing one change behind until the video's next write.

Statements are prepared once; each carries its consistency: LOCAL_QUORUM for reads and plain
writes, LOCAL_SERIAL for the Paxos phase of lightweight transactions (the keyspace uses
NetworkTopologyStrategy, so a second data centre does not join the Paxos round of the first).
"""
from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

from cassandra import ConsistencyLevel, OperationTimedOut, RequestExecutionException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, dict_factory

from reelhouse.domain.creators import Creator
from reelhouse.domain.videos import MUTABLE_FIELDS, Stage, Video, VideoStatus, check_transition
from reelhouse.ports import Catalog, CatalogError, Page, VideoNotFound, decode_page_token, encode_page_token
from reelhouse.settings import Settings
from reelhouse.templates import render_template

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "infra" / "cassandra" / "schema.cql"
HOST = "127.0.0.1"  # one node on loopback; the driver discovers a cluster's other nodes from it
REQUEST_TIMEOUT_S = 15.0
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")

JSON_FIELDS = {"media_info", "renditions"}
VIDEO_COLUMNS = (
    "id", "creator_id", "title", "filename", "size", "content_type", "description", "tags", "category",
    "status", "stage", "progress", "reason", "source_bucket", "source_key", "duration_s", "width", "height",
    "media_info", "renditions", "cdn_urls", "created_at", "updated_at",
)
CREATOR_COLUMNS = ("id", "name", "token_hash", "created_at")
QUORUM, SERIAL = ConsistencyLevel.LOCAL_QUORUM, ConsistencyLevel.LOCAL_SERIAL


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
        try:
            self._session: Session = self._cluster.connect()
            # The node stamps plain writes from the same clock as its Paxos ballots, so a delete
            # always lands after the transaction it follows (a client clock could be a little ahead).
            self._session.use_client_timestamp = False
            for statement in statements:  # CREATE ... IF NOT EXISTS: a no-op once applied
                self._session.execute(statement)
            self._prepare_fixed_statements()
        except NoHostAvailable as exc:
            self._cluster.shutdown()
            raise CatalogError(
                f"cannot reach Cassandra at {self.address}: start it with `reelhouse up` "
                f"(REELHOUSE_STACK=full), or choose the SQLite catalog (REELHOUSE_CATALOG_ENGINE=sqlite) ({exc})"
            ) from exc
        except BaseException:
            self._cluster.shutdown()
            raise
        self._by_fields: dict[tuple[str, tuple[str, ...]], PreparedStatement] = {}
        self._lock = threading.Lock()

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
        self._delete_counters = self._prepare(f"DELETE FROM {ks}.video_counters WHERE video_id = ?")
        self._increment = self._prepare(
            f"UPDATE {ks}.video_counters SET value = value + ? WHERE video_id = ? AND name = ?"
        )
        self._select_counters = self._prepare(f"SELECT name, value FROM {ks}.video_counters WHERE video_id = ?")
        creator_columns, creator_marks = ", ".join(CREATOR_COLUMNS), ", ".join("?" for _ in CREATOR_COLUMNS)
        self._claim_creator = {
            table: self._prepare(
                f"INSERT INTO {ks}.{table} ({creator_columns}) VALUES ({creator_marks}) IF NOT EXISTS", serial=True
            )
            for table in ("creators", "creators_by_name", "creators_by_token_hash")
        }
        # IF id = ?: a name is released only by the creator who claimed it, never from one who won it.
        self._release_name = self._prepare(f"DELETE FROM {ks}.creators_by_name WHERE name = ? IF id = ?", serial=True)
        self._release_id = self._prepare(f"DELETE FROM {ks}.creators WHERE id = ? IF EXISTS", serial=True)
        self._select_creator = {
            key: self._prepare(f"SELECT {creator_columns} FROM {ks}.{table} WHERE {key} = ?")
            for table, key in (("creators", "id"), ("creators_by_name", "name"), ("creators_by_token_hash", "token_hash"))
        }

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

    def _run(self, statement: PreparedStatement, values: list) -> Any:
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
        # A deleted counter cannot be counted again (Cassandra's rule): fine, video ids are never reused.
        self._run(self._delete_counters, [video_id])

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

    def counters(self, video_id: str) -> dict[str, int]:
        return {row["name"]: row["value"] for row in self._run(self._select_counters, [video_id])}

    # ------------------------------------------------------------------ creators
    def create_creator(self, creator: Creator) -> None:
        """Claims the name, then the id, then the token hash, each with INSERT ... IF NOT EXISTS;
        a refused claim releases the earlier ones. The token comes last: a creator cannot sign in
        before the name and id are theirs."""
        values = [creator.id, creator.name, creator.token_hash, creator.created_at]
        if not self._run(self._claim_creator["creators_by_name"], values).was_applied:
            raise CatalogError(f"the creator name {creator.name!r} is taken")
        if not self._run(self._claim_creator["creators"], values).was_applied:
            self._run(self._release_name, [creator.name, creator.id])
            raise CatalogError(f"a creator with id {creator.id!r} already exists")
        if not self._run(self._claim_creator["creators_by_token_hash"], values).was_applied:
            self._run(self._release_id, [creator.id])
            self._run(self._release_name, [creator.name, creator.id])
            raise CatalogError("another creator has the same token; issue a new token")

    def get_creator(self, creator_id: str) -> Optional[Creator]:
        return self._creator_where("id", creator_id)

    def creator_by_token_hash(self, token_hash: str) -> Optional[Creator]:
        return self._creator_where("token_hash", token_hash)

    def creator_by_name(self, name: str) -> Optional[Creator]:
        return self._creator_where("name", name)

    def _creator_where(self, key: str, value: str) -> Optional[Creator]:
        row = self._run(self._select_creator[key], [value]).one()
        return Creator(**{name: row[name] for name in CREATOR_COLUMNS}) if row else None


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


def _row_to_video(row: dict[str, Any]) -> Video:
    data = {name: row[name] for name in VIDEO_COLUMNS}
    for name in JSON_FIELDS:
        data[name] = json.loads(data[name]) if data[name] is not None else ([] if name == "renditions" else {})
    # Cassandra stores an empty collection as no value at all.
    data["tags"] = list(data["tags"] or [])
    data["cdn_urls"] = dict(data["cdn_urls"] or {})
    return Video.from_dict(data)
