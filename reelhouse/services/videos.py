"""Reading videos: cache-aside over the catalog, with live upload progress."""
from __future__ import annotations

from reelhouse.domain.videos import Video, VideoStatus
from typing import TYPE_CHECKING

from reelhouse.ports import Cache, Catalog
from reelhouse.settings import Settings

if TYPE_CHECKING:  # the upload service imports nothing from here; the name is for readers
    from reelhouse.services.uploads import UploadService
from reelhouse.services.errors import NotFound

VIDEO_CACHE_KEY = "video:{id}"
# A video's counts, cached apart from its metadata: they change far more often. Whoever changes a count
# drops the entry (InvalidatingCatalog.increment); the TTL is only a backstop.
VIDEO_COUNTS_KEY = "video:{id}:counts"
COUNTS = ("views", "likes", "comments", "shares")
COUNTS_TTL_S = 300


class InvalidatingCatalog(Catalog):
    """Wraps a catalog so that every write drops the video's cached view.

    Every writer (API, workers, DAG tasks) goes through bootstrap, so no
    update can leave a stale entry behind.
    """

    def __init__(self, inner: Catalog, cache: Cache):
        self.inner = inner
        self.cache = cache
        self.engine = inner.engine

    def _drop(self, video_id: str) -> None:
        self.cache.delete(VIDEO_CACHE_KEY.format(id=video_id))

    def _drop_counts(self, video_id: str) -> None:
        self.cache.delete(VIDEO_COUNTS_KEY.format(id=video_id))

    def create_video(self, video):
        self.inner.create_video(video)
        self._drop(video.id)

    def get_video(self, video_id):
        return self.inner.get_video(video_id)

    def videos_by_creator(self, creator_id, limit=20, page_token=None):
        return self.inner.videos_by_creator(creator_id, limit, page_token)

    def videos_in_stage(self, stage, limit=100):
        return self.inner.videos_in_stage(stage, limit)

    def compare_and_set_status(self, video_id, expect_status, expect_stage, new_status, new_stage, **fields):
        applied = self.inner.compare_and_set_status(video_id, expect_status, expect_stage, new_status,
                                                    new_stage, **fields)
        self._drop(video_id)
        return applied

    def update_video(self, video_id, **fields):
        self.inner.update_video(video_id, **fields)
        self._drop(video_id)

    def delete_video(self, video_id):
        self.inner.delete_video(video_id)
        self._drop(video_id)
        self._drop_counts(video_id)

    def increment(self, video_id, counter, amount=1):
        self.inner.increment(video_id, counter, amount)
        self._drop_counts(video_id)

    def set_counter(self, video_id, counter, value):
        self.inner.set_counter(video_id, counter, value)
        self._drop_counts(video_id)

    def counters(self, video_id):
        return self.inner.counters(video_id)

    def create_account(self, account):
        self.inner.create_account(account)

    def get_account(self, account_id):
        return self.inner.get_account(account_id)

    def update_account(self, account_id, **fields):
        self.inner.update_account(account_id, **fields)

    def set_like(self, video_id, account_id, liked):
        changed = self.inner.set_like(video_id, account_id, liked)
        if changed:
            self._drop_counts(video_id)
        return changed

    def is_liked(self, video_id, account_id):
        return self.inner.is_liked(video_id, account_id)

    def add_comment(self, comment):
        self.inner.add_comment(comment)
        self._drop_counts(comment.video_id)

    def get_comment(self, comment_id):
        return self.inner.get_comment(comment_id)

    def comments_of(self, video_id, parent_id=None, limit=20, page_token=None):
        return self.inner.comments_of(video_id, parent_id, limit, page_token)

    def delete_comment(self, comment_id):
        comment = self.inner.get_comment(comment_id)
        deleted = self.inner.delete_comment(comment_id)
        if comment is not None:
            self._drop_counts(comment.video_id)
        return deleted

    def account_by_token_hash(self, token_hash):
        return self.inner.account_by_token_hash(token_hash)

    def account_by_name(self, name):
        return self.inner.account_by_name(name)

    def close(self):
        self.inner.close()


class VideoQueries:
    def __init__(self, settings: Settings, catalog: Catalog, cache: Cache, uploads: "UploadService"):
        self.settings, self.catalog, self.cache, self.uploads = settings, catalog, cache, uploads
        self.ttl_s = settings.cache_ttl_s

    def view(self, video_id: str) -> dict:
        """What GET /videos/<id> shows: the cached metadata, live upload progress, and the counts."""
        view = self.metadata(video_id)
        if view["status"] == VideoStatus.UPLOADING.value:
            received = self.uploads.bytes_received(video_id)
            view["bytes_received"] = received if received is not None else view["bytes_received"]
        view.update(self.counts(video_id))
        return view

    def metadata(self, video_id: str) -> dict:
        """The video's cached view alone (one Redis read on a hit); raises NotFound."""
        key = VIDEO_CACHE_KEY.format(id=video_id)
        view = self.cache.get_json(key) if len(video_id) <= 64 else None
        if view is None:
            video = self.catalog.get_video(video_id) if len(video_id) <= 64 else None
            if video is None:
                raise NotFound(f"no video with id {video_id!r}", field="video_id", code="unknown_video")
            view = self._render(video)
            self.cache.set_json(key, view, self.ttl_s)
        return view

    def counts(self, video_id: str) -> dict[str, int]:
        """views, likes, comments and shares, 0 until counted (from their own cache entry)."""
        key = VIDEO_COUNTS_KEY.format(id=video_id)
        counts = self.cache.get_json(key)
        if counts is None:
            stored = self.catalog.counters(video_id)
            counts = {name: int(stored.get(name, 0)) for name in COUNTS}
            self.cache.set_json(key, counts, COUNTS_TTL_S)
        return counts

    def _render(self, video: Video) -> dict:
        creator = self.catalog.get_account(video.creator_id)
        done = video.status != VideoStatus.UPLOADING
        urls = playback_urls(self.settings, video.id) if video.status == VideoStatus.READY else {}
        return {
            "id": video.id,
            "title": video.title,
            "description": video.description,
            "tags": video.tags,
            "category": video.category,
            "visibility": video.visibility,
            "creator": {"id": video.creator_id, "name": creator.name if creator else None},
            "status": video.status.value,
            "stage": video.stage.value if video.stage else None,
            "progress": video.progress,
            "reason": video.reason,
            "filename": video.filename,
            "size": video.size,
            "bytes_received": video.size if done else 0,
            "duration_s": video.duration_s,
            "width": video.width,
            "height": video.height,
            "renditions": video.renditions,
            "poster_url": urls.get("poster_url"),
            "playback_url": urls.get("playback_url"),
            "sprite_vtt_url": urls.get("sprite_vtt_url"),
            "watch_url": urls.get("watch_url"),
            "created_at": video.created_at,
            "updated_at": video.updated_at,
        }


def playback_urls(settings, video_id: str) -> dict[str, str]:
    """Where players find a ready video: media through the CDN tier (nginx), the page on the site.

    The media paths are the origin's (``serving_api.playback``) over the ladder layout the
    worker publishes under ``videos/<id>/`` in the media bucket.
    """
    media = f"{settings.cdn_url}/media/{video_id}"
    return {
        "playback_url": f"{media}/hls/master.m3u8",
        "poster_url": f"{media}/poster.jpg",
        "sprite_vtt_url": f"{media}/sprite.vtt",
        "watch_url": f"{settings.external_url}/watch/{video_id}",
    }
