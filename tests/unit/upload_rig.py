"""An UploadService on the in-memory fakes, with what its unit tests send and read back
(``test_upload_service``, ``test_upload_sweep``; fixtures in ``conftest``)."""
from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass

from reelhouse.domain.accounts import Principal
from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.services.upload_probe import UploadProber
from reelhouse.services.upload_requests import check_new_upload
from reelhouse.services.uploads import UploadService
from reelhouse.settings import Settings
from tests.fakes.bus import InMemoryBus
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.coordination import InMemoryCoordination
from tests.fakes.object_store import InMemoryObjectStore
from tests.fakes.upload_sessions import InMemoryUploadSessions

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part S3 allows: both the chunk size and the tus part size here
TTL_S = 3600

ALICE = Principal(kind="account", id="c-alice", name="alice", has_channel=True, via="token")
BOB = Principal(kind="account", id="c-bob", name="bob", has_channel=True, via="token")


class PartsOnlyObjectStore(InMemoryObjectStore):
    """The fake without appends, as S3: tus bytes are then cut into parts and tails."""

    supports_append = False


class DeferredProber(UploadProber):
    """Probes when the test says so (``Platform.probe_pending``) rather than in a background thread."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending: list[str] = []

    def submit(self, video_id: str) -> None:
        if video_id not in self.pending:
            self.pending.append(video_id)

    def run_pending(self) -> None:
        pending, self.pending = self.pending, []
        for video_id in pending:
            self.probe_video(video_id)


@dataclass
class Platform:
    settings: Settings
    uploads: UploadService
    objects: InMemoryObjectStore
    catalog: InMemoryCatalog
    bus: InMemoryBus
    sessions: InMemoryUploadSessions
    coordination: InMemoryCoordination

    def video(self, video_id):
        return self.catalog.get_video(video_id)

    def probe_pending(self):
        """Run the probes completions handed over, as the API's probe threads would."""
        self.uploads.prober.run_pending()

    def parts(self, session):
        return self.objects.list_parts(session.bucket, session.key, session.multipart_id)

    def tails(self, session):
        return list(self.objects.list(session.bucket, session.tails_prefix))

    def multipart_uploads(self):
        return self.objects.list_multipart_uploads(self.settings.bucket_uploads)

    def transcode_jobs(self):
        """Every job on the bus, read by a fresh consumer group (which starts at the oldest message)."""
        subscription = self.bus.subscribe(TOPIC_TRANSCODE_JOBS, f"check-{uuid.uuid4().hex[:8]}", "test")
        try:
            return [message.value for message in subscription.poll(max_messages=100, timeout_s=0)]
        finally:
            subscription.close()

    def sweep_after_ttl(self):
        return self.uploads.sweep_expired(now=time.time() + TTL_S + 1)


def build_platform(tmp_path, storage="appends", probe_file=None, **overrides) -> Platform:
    """``storage``: how tus bytes reach the fake store, "appends" (as the local store) or "parts" (as S3)."""
    settings = Settings(home=tmp_path / "home", upload_part_size=PART, upload_chunk_size=PART,
                        upload_ttl_s=TTL_S, **overrides)
    objects = InMemoryObjectStore() if storage == "appends" else PartsOnlyObjectStore()
    catalog, bus = InMemoryCatalog(), InMemoryBus()
    sessions, coordination = InMemoryUploadSessions(ttl_s=TTL_S), InMemoryCoordination()
    objects.ensure_bucket(settings.bucket_uploads)
    prober = DeferredProber(settings, objects, catalog, bus, sessions, coordination,
                            **({"probe_file": probe_file} if probe_file else {}))
    uploads = UploadService(settings, objects, catalog, bus, sessions, coordination, prober)
    return Platform(settings, uploads, objects, catalog, bus, sessions, coordination)


def new_upload(size, filename="clip.mp4"):
    return check_new_upload({"filename": filename, "size": size, "content_type": "video/mp4",
                             "title": "A clip"}, max_size=1 << 40)


def chunks_of(data, size=PART):
    return [data[start:start + size] for start in range(0, len(data), size)]


def put(platform, session, number, data, digest=None, who=ALICE):
    return platform.uploads.put_chunk(who, session.id, number, io.BytesIO(data), len(data), digest)


def append(platform, session, offset, data, who=ALICE):
    return platform.uploads.tus_append(who, session.id, offset, io.BytesIO(data), len(data))


def offset_of(platform, session):
    return platform.uploads.tus_offset(ALICE, session.id)[1]
