"""A catalog made by an earlier Reelhouse opens in this one with nothing lost: creators become accounts
with a channel (same ids, names and tokens), and videos gain their visibility (public)."""
from __future__ import annotations

import sqlite3

import pytest

from reelhouse.adapters.catalog_sqlite import SCHEMA_VERSION, SQLiteCatalog
from reelhouse.domain.accounts import hash_token

# The tables of schema version 1 as that version wrote them (reelhouse/adapters/catalog_sqlite.py at 2028eae).
VERSION_1 = """
CREATE TABLE videos (id TEXT PRIMARY KEY, creator_id TEXT NOT NULL, title TEXT NOT NULL, filename TEXT NOT NULL,
  size INTEGER NOT NULL, content_type TEXT NOT NULL, description TEXT NOT NULL, tags TEXT NOT NULL,
  category TEXT NOT NULL, status TEXT NOT NULL, stage TEXT, progress REAL NOT NULL, reason TEXT,
  source_bucket TEXT NOT NULL, source_key TEXT NOT NULL, duration_s REAL, width INTEGER, height INTEGER,
  media_info TEXT NOT NULL, renditions TEXT NOT NULL, cdn_urls TEXT NOT NULL, created_at REAL NOT NULL,
  updated_at REAL NOT NULL);
CREATE INDEX videos_by_creator ON videos (creator_id, created_at DESC, id DESC);
CREATE INDEX videos_by_stage ON videos (stage, created_at, id) WHERE status = 'processing';
CREATE TABLE video_counters (video_id TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (video_id, name)) WITHOUT ROWID;
CREATE TABLE creators (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, token_hash TEXT NOT NULL UNIQUE,
  created_at REAL NOT NULL);
INSERT INTO creators VALUES ('c0123456789abcde', 'ada', '{token_hash}', 1700000000.5);
INSERT INTO videos VALUES ('v1', 'c0123456789abcde', 'old video', 'a.mp4', 10, 'video/mp4', '', '["x"]', '',
  'ready', NULL, 100.0, NULL, 'uploads', 'k', 6.0, 640, 360, '{{}}', '[]', '{{}}', 1700000001.0, 1700000002.0);
INSERT INTO video_counters VALUES ('v1', 'views', 3);
PRAGMA user_version = 1;
"""


def test_a_version_1_sqlite_catalog_is_migrated_in_place(tmp_path):
    path = tmp_path / "catalog.db"
    token_hash = hash_token("rh_old-token")
    with sqlite3.connect(path) as connection:
        connection.executescript(VERSION_1.format(token_hash=token_hash))

    catalog = SQLiteCatalog(path)
    try:
        account = catalog.account_by_token_hash(token_hash)
        assert (account.id, account.name, account.created_at) == ("c0123456789abcde", "ada", 1700000000.5)
        assert (account.has_channel, account.is_admin, account.password_hash) == (True, False, None)
        assert catalog.account_by_name("ada") == account
        video = catalog.get_video("v1")
        assert (video.title, video.visibility, video.tags) == ("old video", "public", ["x"])
        assert catalog.counters("v1") == {"views": 3}
    finally:
        catalog.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "creators" not in tables and {"accounts", "likes", "comments"} <= tables
    SQLiteCatalog(path).close()  # opening it again is a no-op


# ---------------------------------------------------------------------------- Cassandra
# The tables of the Cassandra layout before accounts as that layout made them (infra/cassandra/schema.cql
# at 2028eae): videos without visibility, and creators by id, name and token hash.
CASSANDRA_BEFORE_ACCOUNTS = """
CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': 1}};
CREATE TABLE {ks}.videos (id text PRIMARY KEY, creator_id text, title text, filename text, size bigint,
  content_type text, description text, tags list<text>, category text, status text, stage text, progress double,
  reason text, source_bucket text, source_key text, duration_s double, width int, height int, media_info text,
  renditions text, cdn_urls map<text, text>, created_at double, updated_at double);
CREATE TABLE {ks}.videos_by_creator (creator_id text, created_at double, id text, title text, filename text,
  size bigint, content_type text, description text, tags list<text>, category text, status text, stage text,
  progress double, reason text, source_bucket text, source_key text, duration_s double, width int, height int,
  media_info text, renditions text, cdn_urls map<text, text>, updated_at double,
  PRIMARY KEY ((creator_id), created_at, id)) WITH CLUSTERING ORDER BY (created_at DESC, id DESC);
CREATE TABLE {ks}.creators (id text PRIMARY KEY, name text, token_hash text, created_at double);
CREATE TABLE {ks}.creators_by_name (name text PRIMARY KEY, id text, token_hash text, created_at double);
CREATE TABLE {ks}.creators_by_token_hash (token_hash text PRIMARY KEY, id text, name text, created_at double);
INSERT INTO {ks}.creators (id, name, token_hash, created_at) VALUES ('c0123456789abcde', 'ada', '{ada}', 1700000000.5);
INSERT INTO {ks}.creators_by_name (name, id, token_hash, created_at) VALUES ('ada', 'c0123456789abcde', '{ada}', 1700000000.5);
INSERT INTO {ks}.creators_by_token_hash (token_hash, id, name, created_at) VALUES ('{ada}', 'c0123456789abcde', 'ada', 1700000000.5);
INSERT INTO {ks}.creators (id, name, token_hash, created_at) VALUES ('c1111111111111111', 'grace', '{grace}', 1700000000.75);
INSERT INTO {ks}.videos (id, creator_id, title, filename, size, content_type, description, tags, category, status,
  progress, source_bucket, source_key, duration_s, width, height, media_info, renditions, cdn_urls, created_at,
  updated_at) VALUES ('v1', 'c0123456789abcde', 'old video', 'a.mp4', 10, 'video/mp4', '', ['x'], '', 'ready', 100.0,
  'uploads', 'k', 6.0, 640, 360, '{{}}', '[]', {{}}, 1700000001.0, 1700000002.0);
INSERT INTO {ks}.videos_by_creator (creator_id, created_at, id, title, filename, size, content_type, description,
  tags, category, status, progress, source_bucket, source_key, duration_s, width, height, media_info, renditions,
  cdn_urls, updated_at) VALUES ('c0123456789abcde', 1700000001.0, 'v1', 'old video', 'a.mp4', 10, 'video/mp4', '',
  ['x'], '', 'ready', 100.0, 'uploads', 'k', 6.0, 640, 360, '{{}}', '[]', {{}}, 1700000002.0);
CREATE TABLE {ks}.accounts_by_name (name text PRIMARY KEY, id text);
INSERT INTO {ks}.accounts_by_name (name, id) VALUES ('ada', 'c0123456789abcde');
"""


@pytest.mark.full
def test_a_cassandra_keyspace_from_before_accounts_is_migrated_on_connect(cassandra_server):
    """Creators become accounts with a channel, videos gain their visibility; the last statement above
    is a claim left by an earlier migration that died after it, which the migration takes as done."""
    from cassandra.cluster import Cluster

    from reelhouse.adapters.catalog_cassandra import CassandraCatalog

    settings = cassandra_server.model_copy(update={"cassandra_keyspace": "reelhouse_migration"})
    ks, ada_token, grace_token = settings.cassandra_keyspace, hash_token("rh_ada"), hash_token("rh_grace")
    cluster = Cluster(["127.0.0.1"], port=settings.cassandra_port, protocol_version=5)
    admin = cluster.connect()
    try:
        script = CASSANDRA_BEFORE_ACCOUNTS.format(ks=ks, dc=settings.cassandra_datacenter, ada=ada_token,
                                                  grace=grace_token)
        for statement in filter(str.strip, script.split(";")):
            admin.execute(statement, timeout=60)

        catalog = CassandraCatalog(settings)
        try:
            ada = catalog.get_account("c0123456789abcde")
            assert (ada.name, ada.token_hash, ada.created_at) == ("ada", ada_token, 1700000000.5)
            assert (ada.has_channel, ada.is_admin, ada.password_hash) == (True, False, None)
            assert catalog.account_by_name("ada") == catalog.account_by_token_hash(ada_token) == ada
            grace = catalog.account_by_token_hash(grace_token)
            assert (grace.id, grace.has_channel) == ("c1111111111111111", True)
            assert catalog.account_by_name("grace") == grace

            video = catalog.get_video("v1")
            assert (video.title, video.visibility, video.tags) == ("old video", "public", ["x"])
            assert [v.visibility for v in catalog.videos_by_creator("c0123456789abcde").items] == ["public"]
            catalog.update_video("v1", visibility="unlisted")
            assert catalog.videos_by_creator("c0123456789abcde").items[0].visibility == "unlisted"
        finally:
            catalog.close()

        tables = {row.table_name for row in admin.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", [ks])}
        assert not tables & {"creators", "creators_by_name", "creators_by_token_hash"}
        assert {"accounts", "accounts_by_name", "accounts_by_token_hash", "likes", "comments"} <= tables
        CassandraCatalog(settings).close()  # opening it again is a no-op
    finally:
        admin.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        cluster.shutdown()
