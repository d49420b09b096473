"""Player and interaction events: one versioned schema, the wire format of ``POST /events``.

Every event carries ``COMMON`` fields, and the fields of its type (``CLIENT_TYPES`` for what the player
sends, ``SERVER_TYPES`` for what only the API emits when it stores an interaction). The server adds
``SERVER_FIELDS`` before the event goes onto the bus (topic ``watch-events``, keyed by video id); a
client cannot set them: whatever it sends under those names, like any field the schema does not name,
is dropped. ``json_schema(event_type)`` gives the JSON Schema of a type as the server publishes it; the
checks in ``check_client_event`` follow the same table, and a test holds the two together.

Event time is ``client_ts`` (epoch milliseconds, UTC): it drives the watermark, the partitions and every
"day" downstream. ``received_ts`` is when the API took the event.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Union

SCHEMA_VERSION = 1
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Field:
    kind: str  # "uuid" | "id" | "string" | "integer" | "number" | "boolean" | "enum"
    minimum: Optional[float] = None
    values: tuple = ()  # enum
    max_length: int = 200  # string
    meaning: str = ""


def _seconds(meaning: str) -> Field:
    return Field("number", minimum=0, meaning=meaning)


RENDITION = Field("integer", minimum=0, meaning="height of the rendition playing, in pixels (720 for 720p)")
BITRATE = Field("number", minimum=0, meaning="bitrate of that rendition, kbit/s")
POSITION = _seconds("playback position, seconds from the start of the video")

COMMON: dict[str, Field] = {
    "event_id": Field("uuid", meaning="a UUID made by the client; the deduplication key"),
    "event_type": Field("enum", meaning="one of the types below"),
    "schema_version": Field("integer", minimum=SCHEMA_VERSION, meaning=f"{SCHEMA_VERSION}"),
    "video_id": Field("id", meaning="the video played"),
    "session_id": Field("id", meaning="one playback: from the player's load of the video to its end"),
    "client_ts": Field("integer", minimum=0, meaning="when it happened, epoch milliseconds UTC (the event time)"),
}

CLIENT_TYPES: dict[str, dict[str, Field]] = {
    "view_start": {"ttff_ms": Field("number", minimum=0, meaning="time to first frame, ms"),
                   "rendition": RENDITION, "bitrate_kbps": BITRATE},
    "heartbeat": {"position_s": POSITION, "rendition": RENDITION, "bitrate_kbps": BITRATE,
                  "buffer_s": _seconds("seconds buffered ahead of the position")},
    "pause": {"position_s": POSITION},
    "resume": {"position_s": POSITION},
    "seek": {"seek_from_s": _seconds("position before the seek"), "seek_to_s": _seconds("position after it")},
    "quality_switch": {"rendition_from": RENDITION, "rendition_to": RENDITION,
                       "switch_mode": Field("enum", values=("auto", "manual"),
                                            meaning="auto: the player's adaptation; manual: the viewer chose")},
    "rebuffer_start": {"position_s": POSITION},
    "rebuffer_end": {"position_s": POSITION, "stall_ms": Field("number", minimum=0, meaning="how long it stalled, ms")},
    "view_end": {"position_s": POSITION, "watch_time_s": _seconds("seconds played, as the client counted them "
                                                                  "(kept, but not trusted downstream)"),
                 "completed": Field("boolean", meaning="the player reached the end")},
    "error": {"error_code": Field("string", max_length=200, meaning="the player's error code or name")},
}

SERVER_TYPES: dict[str, dict[str, Field]] = {
    "like": {},
    "unlike": {},
    "comment": {"comment_id": Field("id", meaning="the comment stored")},
    "share": {"start_s": _seconds("where the shared link starts playing (0: the beginning)")},
}

DEVICE_CLASSES = ("desktop", "mobile", "tablet", "tv", "bot", "other")
VIEWER_KINDS = ("account", "anonymous")
SERVER_FIELDS: dict[str, Field] = {
    "received_ts": Field("integer", minimum=0, meaning="when the API took the event, epoch ms UTC"),
    "viewer_id": Field("id", meaning="an account id, or the anonymous viewer's rh_viewer cookie"),
    "viewer_kind": Field("enum", values=VIEWER_KINDS, meaning="account or anonymous"),
    "creator_id": Field("id", meaning="the video's creator (its channel)"),
    "video_duration_s": Field("number", minimum=0, meaning="the video's duration; 0 while unknown"),
    "device_class": Field("enum", values=DEVICE_CLASSES, meaning="from the request's User-Agent"),
}

ALL_TYPES = {**CLIENT_TYPES, **SERVER_TYPES}
_CLIENT_FIELDS = {kind: tuple({**COMMON, **fields}.items()) for kind, fields in CLIENT_TYPES.items()}


@dataclass(frozen=True)
class Rejection:
    reason: str  # not_an_object | unknown_type | server_side_type | missing_field | wrong_type |
    #              unsupported_schema_version | future_timestamp | unknown_video
    field: Optional[str] = None
    detail: str = ""


def check_client_event(raw: Any, now_ms: int, max_future_s: float) -> Union[dict, Rejection]:
    """The event as it goes on, with only the schema's fields; or why it is refused. ``unknown_video``
    is for the caller, which knows the catalog."""
    if not isinstance(raw, dict):
        return Rejection("not_an_object", detail="an event is a JSON object")
    event_type = raw.get("event_type")
    if event_type is None:
        return Rejection("missing_field", "event_type", "every event has event_type")
    if not isinstance(event_type, str) or event_type not in ALL_TYPES:
        return Rejection("unknown_type", "event_type", f"types: {', '.join(CLIENT_TYPES)}")
    if event_type in SERVER_TYPES:
        return Rejection("server_side_type", "event_type",
                         f"{event_type} events are recorded by the API when the interaction is stored")
    event = {}
    for name, spec in _CLIENT_FIELDS[event_type]:
        value = raw.get(name)
        if value is None:
            return Rejection("missing_field", name, f"{event_type} events carry {name}")
        problem = _check(name, spec, value)
        if problem:
            return Rejection("wrong_type", name, problem)
        event[name] = value
    if event["schema_version"] != SCHEMA_VERSION:
        return Rejection("unsupported_schema_version", "schema_version", f"this server takes version {SCHEMA_VERSION}")
    if event["client_ts"] > now_ms + max_future_s * 1000:
        return Rejection("future_timestamp", "client_ts",
                         f"client_ts is more than {max_future_s:g} s ahead of the server's clock")
    event_id = event["event_id"]
    if not (len(event_id) == 36 and event_id == event_id.lower()
            and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-"):  # else already canonical
        event["event_id"] = str(uuid.UUID(event_id))  # lowercase and hyphenated
    return event


def _check(name: str, spec: Field, value: Any) -> str:
    """'' when ``value`` fits ``spec``, else what is wrong."""
    kind = spec.kind
    value_type = type(value)
    if (value_type is float or value_type is int) and kind == "number" and spec.minimum == 0 and 0 <= value < math.inf:
        return ""  # the common case, decided at once: a finite number >= 0
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind == "integer" and not isinstance(value, int)) or not math.isfinite(value):
            return f"{name} must be {'an integer' if kind == 'integer' else 'a number'}"
        if spec.minimum is not None and value < spec.minimum:
            return f"{name} must be at least {spec.minimum:g}"
        return ""
    if kind == "boolean":
        return "" if isinstance(value, bool) else f"{name} must be true or false"
    if not isinstance(value, str):
        return f"{name} must be a string"
    if kind == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return f"{name} must be a UUID"
        return ""
    if kind == "id":
        return "" if _ID.match(value) else f"{name} must be 1-64 letters, digits, '_' or '-'"
    if kind == "enum":
        return "" if not spec.values or value in spec.values else f"{name} must be one of {', '.join(spec.values)}"
    return "" if 0 < len(value) <= spec.max_length else f"{name} must be 1-{spec.max_length} characters"


def json_schema(event_type: str, with_server_fields: bool = True) -> dict:
    """The JSON Schema (2020-12) of one type: as the bus carries it, or (``with_server_fields=False``)
    as a client sends it."""
    fields = {**COMMON, **ALL_TYPES[event_type], **(SERVER_FIELDS if with_server_fields else {})}
    properties = {name: _schema_of(spec) for name, spec in fields.items()}
    properties["event_type"] = {"const": event_type}
    properties["schema_version"] = {"const": SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://reelhouse.invalid/schemas/events/v{SCHEMA_VERSION}/{event_type}.json",
        "title": f"{event_type} (schema version {SCHEMA_VERSION})",
        "type": "object",
        "properties": properties,
        "required": list(fields),
    }


def _schema_of(spec: Field) -> dict:
    if spec.kind in ("integer", "number"):
        schema: dict = {"type": spec.kind}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
    elif spec.kind == "boolean":
        schema = {"type": "boolean"}
    elif spec.kind == "uuid":
        schema = {"type": "string", "format": "uuid",
                  "pattern": "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"}
    elif spec.kind == "id":
        schema = {"type": "string", "pattern": ID_PATTERN}
    elif spec.kind == "enum":
        schema = {"type": "string", "enum": list(spec.values)}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": spec.max_length}
    if spec.meaning:
        schema["description"] = spec.meaning
    return schema


_BOT = re.compile(r"bot\b|crawl|spider|slurp|curl/|wget/|python-requests|httpclient|go-http-client|java/", re.I)
_TV = re.compile(r"smart-?tv|appletv|googletv|hbbtv|netcast|roku|crkey|tizen|web0s|webos|\baft[a-z]|bravia", re.I)
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|(android(?!.*mobile))", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|windows phone|blackberry|opera mini", re.I)
_DESKTOP = re.compile(r"windows nt|macintosh|x11|linux|cros", re.I)


def device_class(user_agent: Optional[str]) -> str:
    """desktop, mobile, tablet, tv, bot or other, from a User-Agent header (first match in that order:
    bot, tv, tablet, mobile, desktop)."""
    agent = user_agent or ""
    for name, pattern in (("bot", _BOT), ("tv", _TV), ("tablet", _TABLET), ("mobile", _MOBILE),
                          ("desktop", _DESKTOP)):
        if pattern.search(agent):
            return name
    return "other"
