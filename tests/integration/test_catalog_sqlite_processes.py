"""What only the SQLite catalog has to show: several OS processes share one file
safely, the file is in WAL mode, and the schema is versioned."""
from __future__ import annotations

import multiprocessing
from contextlib import closing
import sqlite3
import time
from pathlib import Path

import pytest

from reelhouse.adapters.catalog_sqlite import BUSY_TIMEOUT_MS, SCHEMA_VERSION, SQLiteCatalog
from reelhouse.domain.videos import Stage, Video, VideoStatus
from reelhouse.ports import CatalogError

VIDEO_COUNT = 40


def _race_for_transcoding(path: str, video_ids: list[str], start_together, results) -> None:
    """Runs in a child process: claim every video it can; report the ones it won."""
    catalog = SQLiteCatalog(Path(path))
    start_together.wait(timeout=30)
    won = [
        video_id for video_id in video_ids
        if catalog.compare_and_set_status(
            video_id, VideoStatus.PROCESSING, Stage.QUEUED, VideoStatus.PROCESSING, Stage.TRANSCODING
        )
    ]
    catalog.close()
    results.put(won)


def test_two_processes_racing_for_the_same_videos_each_video_won_exactly_once(tmp_path):
    path = tmp_path / "catalog.db"
    catalog = SQLiteCatalog(path)
    video_ids = [f"v{i:02d}" for i in range(VIDEO_COUNT)]
    for video_id in video_ids:
        catalog.create_video(
            Video(id=video_id, creator_id="c1", title="t", filename="f.mp4", size=1,
                  status=VideoStatus.PROCESSING, stage=Stage.QUEUED)
        )

    spawn = multiprocessing.get_context("spawn")
    start_together, results = spawn.Barrier(2), spawn.Queue()
    workers = [
        spawn.Process(target=_race_for_transcoding, args=(str(path), video_ids, start_together, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    won_by_each = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    first, second = (set(won) for won in won_by_each)
    assert first.isdisjoint(second), f"won by both processes: {sorted(first & second)}"
    assert first | second == set(video_ids)
    assert {catalog.get_video(video_id).stage for video_id in video_ids} == {Stage.TRANSCODING}
    catalog.close()


def test_the_file_is_in_wal_mode_with_a_schema_version(tmp_path):
    path = tmp_path / "catalog.db"
    SQLiteCatalog(path).close()

    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reopening_keeps_the_data(tmp_path):
    path = tmp_path / "catalog.db"
    first = SQLiteCatalog(path)
    first.create_video(Video(id="v1", creator_id="c1", title="kept", filename="f.mp4", size=1))
    first.increment("v1", "views", 7)
    first.close()

    reopened = SQLiteCatalog(path)
    assert reopened.get_video("v1").title == "kept"
    assert reopened.counters("v1") == {"views": 7}
    reopened.close()


def test_a_process_opening_the_catalog_never_waits_for_a_busy_writer(tmp_path):
    # Every API worker, task and CLI command opens the catalog: with the schema in place that is a
    # read, so one that boots while another process holds the write lock neither waits nor fails.
    path = tmp_path / "catalog.db"
    SQLiteCatalog(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO accounts (id, name, token_hash, created_at) VALUES ('c1', 'busy', 'hash', 0)")
        started = time.monotonic()
        catalog = SQLiteCatalog(path)
        opened_s = time.monotonic() - started
        assert catalog.get_account("c1") is None  # not committed yet
        writer.execute("COMMIT")
    # the old way waited out the whole busy timeout and then failed; a read takes milliseconds
    assert opened_s < BUSY_TIMEOUT_MS / 1000 / 2, f"opening waited {opened_s:.1f} s for the writer"
    assert catalog.get_account("c1").name == "busy"
    catalog.close()


def test_schema_objects_missing_from_an_older_file_are_added_at_start(tmp_path):
    path = tmp_path / "catalog.db"
    SQLiteCatalog(path).close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("DROP INDEX videos_by_stage")  # as a file made before the index existed

    SQLiteCatalog(path).close()
    with closing(sqlite3.connect(path)) as raw:
        indexes = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "videos_by_stage" in indexes


def test_a_file_from_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "catalog.db"
    SQLiteCatalog(path).close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(CatalogError, match="newer"):
        SQLiteCatalog(path)


def test_a_closed_catalog_says_so(tmp_path):
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
    catalog.close()
    with pytest.raises(CatalogError, match="closed"):
        catalog.get_video("v1")
