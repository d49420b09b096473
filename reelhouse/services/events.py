"""Taking player events in: check each against the schema, add what the server knows, publish the batch.

``EventIntake.take`` answers per event (accepted, or rejected with the reason) and puts the accepted
ones onto the bus in one ``publish_many`` on ``watch-events``, keyed by video id (so one video's events
stay in order on one shard or partition). Nothing is published when none is accepted. The caller (the
API) has already checked the body as a whole: a list of at most ``events_max_batch`` events.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from reelhouse.domain.events import Rejection, check_client_event, device_class
from reelhouse.domain.interactions import PUBLIC, may_see_video
from reelhouse.domain.jobs import TOPIC_WATCH_EVENTS
from reelhouse.ports import Bus
from reelhouse.services.errors import NotFound
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.events")


@dataclass(frozen=True)
class Viewer:
    """Who sends the events, by the API's rule (a bearer token's account, else the anonymous-viewer
    cookie); never taken from an event's body."""
    id: str
    kind: str  # "account" | "anonymous"


@dataclass
class Intake:
    accepted: int = 0
    rejected: list[dict] = field(default_factory=list)  # {"index", "reason", "field"?, "detail"?}
    ids: list[str] = field(default_factory=list)  # the bus's message ids of the accepted events


class EventIntake:
    def __init__(self, settings: Settings, bus: Bus, video_view: Callable[[str], dict],
                 clock: Callable[[], float] = time.time):
        """``video_view``: a video's cached metadata (``VideoQueries.metadata``); raises NotFound."""
        self.settings, self.bus, self._video_view, self._clock = settings, bus, video_view, clock

    def take(self, events: list[Any], viewer: Viewer, user_agent: Optional[str]) -> Intake:
        now_ms = int(self._clock() * 1000)
        intake, records, videos = Intake(), [], {}
        device = device_class(user_agent)
        for index, raw in enumerate(events):
            checked = check_client_event(raw, now_ms, self.settings.events_max_future_s)
            if isinstance(checked, Rejection):
                intake.rejected.append(_rejection(index, checked))
                continue
            video = self._video(checked["video_id"], videos)
            if video is None or not may_see_video(video.get("visibility", PUBLIC), video["creator"]["id"], viewer.id):
                intake.rejected.append(_rejection(index, Rejection("unknown_video", "video_id", "no such video")))
                continue
            checked.update(received_ts=now_ms, viewer_id=viewer.id, viewer_kind=viewer.kind,
                           creator_id=video["creator"]["id"], video_duration_s=float(video.get("duration_s") or 0.0),
                           device_class=device)
            records.append((checked["video_id"], checked))
        if records:
            intake.ids = self.bus.publish_many(TOPIC_WATCH_EVENTS, records)
        intake.accepted = len(records)
        return intake

    def _video(self, video_id: str, seen: dict) -> Optional[dict]:
        if video_id not in seen:
            try:
                seen[video_id] = self._video_view(video_id)
            except NotFound:
                seen[video_id] = None
        return seen[video_id]


def _rejection(index: int, rejection: Rejection) -> dict:
    answer = {"index": index, "reason": rejection.reason}
    if rejection.field:
        answer["field"] = rejection.field
    if rejection.detail:
        answer["detail"] = rejection.detail
    return answer
