"""What viewers and owners do to a video: edit and delete it (owner only), like, comment and share.

Who may see a video: ``reelhouse.domain.interactions.may_see_video`` (a private video is its owner's
alone; to anyone else it does not exist, a 404). Every interaction is stored, and counted in the video's
``video_counters``, by one catalog write (``set_like``, ``add_comment``, ``delete_comment``,
``increment("shares")``), then emitted as an event on ``watch-events`` (like, unlike, comment, share),
keyed by video id like the player's. The event follows the write: a process that dies between the two
keeps the interaction and its count and loses the event (the lakehouse's engagements then miss it; the
counts on the video do not).

Deleting a video removes its catalog row first (from then on it is gone for everyone), then its media and
its source. What a crash leaves behind belongs to no video, and ``reelhouse maintenance orphans
--remove`` collects it; so does a transcode that publishes after the delete.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable, Optional
from urllib.parse import urlencode

from reelhouse.domain.accounts import Principal, may_modify_video
from reelhouse.domain.events import SCHEMA_VERSION, device_class
from reelhouse.domain.interactions import COMMENT_MAX_CHARS, VISIBILITIES, Comment, may_see_video, new_comment_id
from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.domain.videos import Video, VideoStatus
from reelhouse.ports import Bus, Catalog, ObjectStore
from reelhouse.services.errors import BadRequest, Forbidden, NotFound, Unauthorized
from reelhouse.services.events import Viewer
from reelhouse.services.upload_requests import CATEGORY, MAX_DESCRIPTION, MAX_TITLE, check_tags, check_text
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.interactions")

EDITABLE = ("title", "description", "tags", "category", "visibility")
COMMENTS_PAGE_MAX = 100


class Interactions:
    def __init__(self, settings: Settings, catalog: Catalog, bus: Bus, objects: ObjectStore,
                 clock: Callable[[], float] = time.time):
        self.settings, self.catalog, self.bus, self.objects, self._clock = settings, catalog, bus, objects, clock

    # ------------------------------------------------------------------ seeing a video
    def visible_video(self, video_id: str, caller_id: Optional[str]) -> Video:
        video = self.catalog.get_video(video_id) if len(video_id) <= 64 else None
        if video is None or not may_see_video(video.visibility, video.creator_id, caller_id):
            raise NotFound(f"no video with id {video_id!r}", field="video_id", code="unknown_video")
        return video

    def owned_video(self, principal: Principal, video_id: str) -> Video:
        if not principal.is_account:
            raise Unauthorized("sign in, or send an API token, to change a video", field="Authorization")
        video = self.visible_video(video_id, principal.id)
        if not may_modify_video(principal, video.creator_id):
            raise Forbidden("only the video's owner may change it", field="video_id", code="not_owner")
        return video

    # ------------------------------------------------------------------ owner only
    def edit(self, principal: Principal, video_id: str, changes: Any) -> Video:
        video = self.owned_video(principal, video_id)
        if not isinstance(changes, dict) or not changes:
            raise BadRequest(f"send a JSON object with any of {', '.join(EDITABLE)}", field="body")
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise BadRequest(f"{unknown[0]} cannot be edited; editable: {', '.join(EDITABLE)}", field=unknown[0],
                             code="not_editable")
        fields: dict[str, Any] = {}
        if "title" in changes:
            fields["title"] = check_text(changes["title"], "title", MAX_TITLE)
            if not fields["title"]:
                raise BadRequest("title must not be empty", field="title")
        if "description" in changes:
            fields["description"] = check_text(changes["description"], "description", MAX_DESCRIPTION)
        if "tags" in changes:
            fields["tags"] = check_tags(changes["tags"])
        if "category" in changes:
            fields["category"] = check_text(changes["category"], "category", 40)
            if fields["category"] and not CATEGORY.match(fields["category"]):
                raise BadRequest("category is letters, digits, spaces, '&', '_' or '-'", field="category")
        if "visibility" in changes:
            if changes["visibility"] not in VISIBILITIES:
                raise BadRequest(f"visibility is one of {', '.join(VISIBILITIES)}", field="visibility")
            fields["visibility"] = changes["visibility"]
        self.catalog.update_video(video.id, **fields)
        log.info("video %s edited by %s: %s", video.id, principal.id, ", ".join(sorted(fields)))
        return self.catalog.get_video(video.id)

    def delete(self, principal: Principal, video_id: str) -> dict:
        video = self.owned_video(principal, video_id)
        self.catalog.delete_video(video.id)
        removed = 0
        for info in list(self.objects.list(self.settings.bucket_media, f"videos/{video.id}/")):
            self.objects.delete(self.settings.bucket_media, info.key)
            removed += 1
        if video.source_key and video.status != VideoStatus.UPLOADING:
            self.objects.delete(video.source_bucket or self.settings.bucket_uploads, video.source_key)
            removed += 1
        log.info("video %s deleted by %s: %d object(s) removed", video.id, principal.id, removed)
        return {"deleted": True, "video_id": video.id, "objects_removed": removed}

    # ------------------------------------------------------------------ likes
    def like_state(self, principal: Principal, video_id: str) -> dict:
        video = self.visible_video(video_id, principal.id)
        liked = principal.is_account and self.catalog.is_liked(video.id, principal.id)
        return {"liked": bool(liked), "likes": int(self.catalog.counters(video.id).get("likes", 0))}

    def set_like(self, principal: Principal, video_id: str, liked: bool, user_agent: Optional[str]) -> dict:
        if not principal.is_account:
            raise Unauthorized("sign in to like a video", field="Authorization", code="sign_in_required")
        video = self.visible_video(video_id, principal.id)
        if self.catalog.set_like(video.id, principal.id, liked):
            self._emit("like" if liked else "unlike", video, Viewer(principal.id, "account"), user_agent)
        return {"liked": liked, "likes": int(self.catalog.counters(video.id).get("likes", 0))}

    # ------------------------------------------------------------------ comments
    def add_comment(self, principal: Principal, video_id: str, body: Any, user_agent: Optional[str]) -> dict:
        if not principal.is_account:
            raise Unauthorized("sign in to comment", field="Authorization", code="sign_in_required")
        video = self.visible_video(video_id, principal.id)
        if not isinstance(body, dict):
            raise BadRequest('send a JSON object {"text", "parent_id"?}', field="body")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("text is required", field="text", code="missing_field")
        text = text.strip()
        if len(text) > COMMENT_MAX_CHARS:
            raise BadRequest(f"a comment is at most {COMMENT_MAX_CHARS} characters, not {len(text)}", field="text",
                             code="too_long")
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
            raise BadRequest("text contains control characters", field="text")
        parent_id = body.get("parent_id")
        if parent_id is not None:
            parent = self.catalog.get_comment(parent_id) if isinstance(parent_id, str) and len(parent_id) <= 64 else None
            if parent is None or parent.video_id != video.id:
                raise BadRequest("parent_id is not a comment on this video", field="parent_id",
                                 code="unknown_comment")
            if parent.parent_id is not None:
                raise BadRequest("replies have one level: reply to the top-level comment", field="parent_id",
                                 code="reply_to_reply")
        comment = Comment(id=new_comment_id(), video_id=video.id, author_id=principal.id, text=text,
                          parent_id=parent_id, created_at=self._clock())
        self.catalog.add_comment(comment)
        self._emit("comment", video, Viewer(principal.id, "account"), user_agent, comment_id=comment.id)
        return self.comment_item(comment, {principal.id: principal.name})

    def comments(self, video_id: str, caller_id: Optional[str], parent_id: Optional[str] = None,
                 limit: Any = 20, cursor: Optional[str] = None) -> dict:
        video = self.visible_video(video_id, caller_id)
        limit = _limit(limit, COMMENTS_PAGE_MAX)
        try:
            page = self.catalog.comments_of(video.id, parent_id or None, limit, cursor or None)
        except ValueError as exc:
            raise BadRequest(str(exc), field="cursor", code="bad_cursor") from exc
        names: dict[str, Optional[str]] = {}
        for comment in page.items:
            if comment.author_id not in names:
                account = self.catalog.get_account(comment.author_id)
                names[comment.author_id] = account.name if account else None
        return {"items": [self.comment_item(comment, names, video.creator_id, caller_id) for comment in page.items],
                "next_cursor": page.next_token}

    def delete_comment(self, principal: Principal, video_id: str, comment_id: str) -> dict:
        if not principal.is_account:
            raise Unauthorized("sign in to delete a comment", field="Authorization", code="sign_in_required")
        video = self.visible_video(video_id, principal.id)
        comment = self.catalog.get_comment(comment_id) if len(comment_id) <= 64 else None
        if comment is None or comment.video_id != video.id:
            raise NotFound(f"no comment {comment_id!r} on this video", field="comment_id", code="unknown_comment")
        if principal.id not in (comment.author_id, video.creator_id):
            raise Forbidden("only the comment's author or the video's owner may delete it", field="comment_id",
                            code="not_author")
        deleted = self.catalog.delete_comment(comment.id)
        return {"deleted": deleted, "comments": int(self.catalog.counters(video.id).get("comments", 0))}

    @staticmethod
    def comment_item(comment: Comment, names: dict, owner_id: Optional[str] = None,
                     caller_id: Optional[str] = None) -> dict:
        item = {"comment_id": comment.id, "video_id": comment.video_id, "parent_id": comment.parent_id,
                "author": {"id": comment.author_id, "name": names.get(comment.author_id)}, "text": comment.text,
                "created_at": comment.created_at}
        if caller_id is not None:
            item["can_delete"] = caller_id in (comment.author_id, owner_id)
        return item

    # ------------------------------------------------------------------ shares
    def share(self, principal: Principal, viewer: Viewer, video_id: str, body: Any, user_agent: Optional[str],
              watch_url: Callable[[str], str]) -> dict:
        video = self.visible_video(video_id, principal.id)
        start_s = (body or {}).get("start_s")  # the route hands over a JSON object or None
        if start_s is not None:
            if isinstance(start_s, bool) or not isinstance(start_s, (int, float)) or start_s < 0 \
                    or (video.duration_s and start_s > video.duration_s):
                raise BadRequest("start_s is a number of seconds within the video", field="start_s")
        self.catalog.increment(video.id, "shares", 1)
        start = int(start_s or 0)
        self._emit("share", video, viewer, user_agent, start_s=float(start))
        url = watch_url(video.id) + (f"?{urlencode({'t': start})}" if start else "")
        return {"url": url, "shares": int(self.catalog.counters(video.id).get("shares", 0))}

    # ------------------------------------------------------------------ events
    def _emit(self, event_type: str, video: Video, viewer: Viewer, user_agent: Optional[str], **fields) -> None:
        now_ms = int(self._clock() * 1000)
        event_id = str(uuid.uuid4())
        event = {"event_id": event_id, "event_type": event_type, "schema_version": SCHEMA_VERSION,
                 "video_id": video.id, "session_id": event_id, "client_ts": now_ms, **fields,
                 "received_ts": now_ms, "viewer_id": viewer.id, "viewer_kind": viewer.kind,
                 "creator_id": video.creator_id, "video_duration_s": float(video.duration_s or 0.0),
                 "device_class": device_class(user_agent)}
        self.bus.publish_many(TOPIC_WATCH_EVENTS, [(video.id, event)])


def _limit(raw: Any, maximum: int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"limit is a whole number from 1 to {maximum}", field="limit") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"limit is a whole number from 1 to {maximum}", field="limit")
    return value
