"""Apache Cassandra as `reelhouse up` runs it: the version the node reports, its status line,
a SIGKILL in the middle of the work, a restart that finds every acknowledged write, a clean stop."""
from __future__ import annotations

import os
import signal

import pytest

from reelhouse.domain.videos import Stage, Video, VideoStatus
from reelhouse.ops import processes, services
from reelhouse.ops.service import pid_file
from reelhouse.settings import Settings
from tests import procs

pytestmark = pytest.mark.full


def test_a_killed_node_restarts_with_every_acknowledged_write(tmp_path):
    from reelhouse.adapters.catalog_cassandra import CassandraCatalog

    settings = Settings(
        stack="full", home=tmp_path, cassandra_port=procs.free_port(), cassandra_storage_port=procs.free_port(),
    )
    said: list[str] = []
    try:
        services.up(settings, ["cassandra"], say=said.append)
        status = services.status(settings)["cassandra"]
        assert (status["state"], status["port"]) == ("running", settings.cassandra_port)
        assert status["version"].startswith("Apache Cassandra 5.0.")
        assert 0 < status["rss_bytes"] < 3 * 1024**3

        catalog = CassandraCatalog(settings)
        catalog.create_video(Video(id="v-durable", creator_id="c1", title="kept", filename="a.mp4", size=1))
        assert catalog.compare_and_set_status("v-durable", VideoStatus.UPLOADING, None, VideoStatus.PROCESSING, Stage.PROBING)
        catalog.increment("v-durable", "views", 3)
        catalog.close()

        # No drain, no flush: the commit log is all the node has when it comes back.
        first_pid = status["pid"]
        os.kill(first_pid, signal.SIGKILL)
        # Its leading thread turns zombie before the last of its threads has let go of the port.
        procs.wait_until(
            lambda: not processes.is_alive(first_pid) and not procs.port_open(settings.cassandra_port), 30,
            "the killed node to be gone",
        )

        services.up(settings, ["cassandra"], say=said.append)
        assert services.status(settings)["cassandra"]["pid"] != first_pid

        catalog = CassandraCatalog(settings)
        video = catalog.get_video("v-durable")
        assert (video.title, video.status, video.stage) == ("kept", VideoStatus.PROCESSING, Stage.PROBING)
        assert [v.id for v in catalog.videos_by_creator("c1").items] == ["v-durable"]
        assert catalog.counters("v-durable") == {"views": 3}
        catalog.close()
    finally:
        services.down(settings, ["cassandra"], say=said.append)

    assert services.status(settings)["cassandra"]["state"] == "stopped"
    assert not pid_file(settings, "cassandra").exists()
