"""Generated viewing activity, for demos, tests and later issues (``reelhouse seed-activity``).

``plan_activity`` makes, from a seed, what a crowd of viewers did over the last days: playback sessions
with the events the watch page's player sends (docs/data.md §2.3): a view start, a heartbeat every 10 s
of playback, and now and then a seek ahead, a pause and its resume, a quality switch or a stall, then
the view's end. ``send_activity`` posts each viewer's events to ``POST /events`` with its own cookie jar
(so each viewer is one anonymous ``rh_viewer``), a session's events in one batch.
"""
from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

DAY_MS = 24 * 3600 * 1000
HEARTBEAT_S = 10.0
RENDITIONS = {360: 800.0, 480: 1400.0, 720: 2800.0, 1080: 5000.0}  # height -> kbit/s


@dataclass
class PlannedSession:
    video_id: str
    session_id: str
    events: list[dict] = field(default_factory=list)

    @property
    def watch_time_s(self) -> float:
        return self.events[-1]["watch_time_s"]


@dataclass
class PlannedViewer:
    number: int
    sessions: list[PlannedSession] = field(default_factory=list)


def plan_activity(videos: dict[str, float], viewers: int, days: int, seed: int, now_ms: int,
                  sessions_per_day: tuple[int, int] = (0, 2)) -> list[PlannedViewer]:
    """``videos``: video id -> duration in seconds. Every event's ``client_ts`` lies in the ``days``
    days before ``now_ms`` (at least a minute before it)."""
    if not videos:
        raise ValueError("no video to watch")
    rng = random.Random(seed)
    ids = sorted(videos)
    plan = []
    for number in range(viewers):
        viewer = PlannedViewer(number)
        starts = [now_ms - day * DAY_MS - rng.randint(3_660_000, DAY_MS - 1)  # an hour and a minute back at least
                  for day in range(days) for _ in range(rng.randint(*sessions_per_day))]
        for start in sorted(starts) or [now_ms - 3_660_000]:  # everyone watches something
            video_id = rng.choice(ids)
            viewer.sessions.append(_session(rng, video_id, videos[video_id], start))
        plan.append(viewer)
    return plan


def _session(rng: random.Random, video_id: str, duration_s: float, start_ms: int) -> PlannedSession:
    session = PlannedSession(video_id, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    clock = [float(start_ms)]  # ms of wall time as the session goes

    def emit(event_type: str, **fields) -> None:
        session.events.append({"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                               "event_type": event_type, "schema_version": 1, "video_id": video_id,
                               "session_id": session.session_id, "client_ts": int(clock[0]), **fields})

    duration = max(duration_s, 1.0)
    height = rng.choice(list(RENDITIONS))
    ttff = rng.uniform(250, 1800)
    clock[0] += ttff
    emit("view_start", ttff_ms=round(ttff, 1), rendition=height, bitrate_kbps=RENDITIONS[height])
    kind = rng.random()
    wanted = duration if kind < 0.35 else duration * rng.uniform(0.3, 0.7) if kind < 0.7 else rng.uniform(5, 25)
    seek_at = rng.uniform(0.1, 0.5) * duration if rng.random() < 0.3 else None
    pause_at = rng.uniform(0.05, 0.6) * duration if rng.random() < 0.3 else None
    switch_at = rng.uniform(0.05, 0.5) * duration if rng.random() < 0.25 else None
    stall_at = rng.uniform(0.05, 0.5) * duration if rng.random() < 0.2 else None
    position, watched, since_beat = 0.0, 0.0, 0.0
    while watched < wanted and position < duration:
        step = min(1.0, wanted - watched, duration - position)
        position, watched, since_beat = position + step, watched + step, since_beat + step
        clock[0] += step * 1000
        if since_beat >= HEARTBEAT_S:
            since_beat = 0.0
            emit("heartbeat", position_s=round(position, 3), rendition=height, bitrate_kbps=RENDITIONS[height],
                 buffer_s=round(rng.uniform(4, 30), 3))
        if switch_at is not None and position >= switch_at:
            switch_at, before = None, height
            height = rng.choice([h for h in RENDITIONS if h != before])
            emit("quality_switch", rendition_from=before, rendition_to=height, switch_mode="auto")
        if stall_at is not None and position >= stall_at:
            stall_at, stall = None, rng.uniform(300, 3000)
            emit("rebuffer_start", position_s=round(position, 3))
            clock[0] += stall
            emit("rebuffer_end", position_s=round(position, 3), stall_ms=round(stall, 1))
        if pause_at is not None and position >= pause_at:
            pause_at = None
            emit("pause", position_s=round(position, 3))
            clock[0] += rng.uniform(2000, 20000)
            emit("resume", position_s=round(position, 3))
        if seek_at is not None and position >= seek_at:
            seek_at, target = None, min(duration, position + rng.uniform(0.1, 0.3) * duration)
            emit("seek", seek_from_s=round(position, 3), seek_to_s=round(target, 3))
            position = target
    emit("view_end", position_s=round(position, 3), watch_time_s=round(watched, 3),
         completed=position >= duration - 0.001)
    return session


@dataclass
class Sent:
    sessions: int = 0
    accepted: int = 0
    rejected: list[dict] = field(default_factory=list)


def send_activity(api_url: str, plan: list[PlannedViewer], progress: Optional[Callable[[int], None]] = None,
                  timeout_s: float = 30.0) -> Sent:
    """Post each session's events (one batch each) with the viewer's own cookie jar, and the CSRF token
    the API gave that jar (a browser's page carries it; here the first answer does). Sessions go in the
    order they happened, whoever watched, so the stream's watermark moves forward and none is late."""
    import requests

    sent, jars = Sent(), {}
    ordered = sorted(((session.events[0]["client_ts"], viewer.number, index, session)
                      for viewer in plan for index, session in enumerate(viewer.sessions)), key=lambda x: x[:3])
    try:
        for _, number, _, session in ordered:
            jar = jars.get(number)
            if jar is None:
                jar = jars[number] = requests.Session()
            answer = jar.post(f"{api_url.rstrip('/')}/events", json=session.events, timeout=timeout_s)
            jar.headers["X-CSRF-Token"] = answer.headers.get("X-CSRF-Token", "")
            if answer.status_code not in (202, 400) or "accepted" not in (answer.json() or {}):
                raise RuntimeError(f"POST /events answered {answer.status_code}: {answer.text[:300]}")
            body = answer.json()
            sent.sessions += 1
            sent.accepted += body["accepted"]
            sent.rejected += body["rejected"]
            if progress:
                progress(1)
    finally:
        for jar in jars.values():
            jar.close()
    return sent


def bronze_events(plan: list[PlannedViewer], videos: dict[str, dict], seed: int) -> list[dict]:
    """The plan's events as bronze holds them, with what the API would have added: each viewer an
    anonymous ``rh_viewer`` id made from the seed and its number, ``videos``: id -> {creator_id,
    duration_s}; for writing straight into bronze (benchmarks), skipping the API and the bus."""
    rng = random.Random(f"viewers-{seed}")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    events = []
    for viewer in plan:
        viewer_id = "v_" + "".join(rng.choice(alphabet) for _ in range(22))
        for session in viewer.sessions:
            video = videos[session.video_id]
            for event in session.events:
                events.append({**event, "received_ts": event["client_ts"], "viewer_id": viewer_id,
                               "viewer_kind": "anonymous", "creator_id": video["creator_id"],
                               "video_duration_s": float(video["duration_s"]), "device_class": "desktop"})
    return events
