"""The player events' schema: what is accepted, what is refused and why, and the JSON Schemas the
server publishes, checked against an independent validator (jsonschema) on the same events."""
from __future__ import annotations

import copy
import uuid

import jsonschema
import pytest

from reelhouse.domain.events import (
    CLIENT_TYPES, COMMON, SERVER_FIELDS, SERVER_TYPES, Rejection, check_client_event, device_class, json_schema,
)

NOW_MS = 1_780_000_000_000

# One valid event of every client type, written out by hand (not built from the schema's table).
VALID = {
    "view_start": {"ttff_ms": 412.5, "rendition": 720, "bitrate_kbps": 2800},
    "heartbeat": {"position_s": 30.0, "rendition": 720, "bitrate_kbps": 2800, "buffer_s": 12.4},
    "pause": {"position_s": 31.2},
    "resume": {"position_s": 31.2},
    "seek": {"seek_from_s": 31.2, "seek_to_s": 90},
    "quality_switch": {"rendition_from": 720, "rendition_to": 1080, "switch_mode": "manual"},
    "rebuffer_start": {"position_s": 95.0},
    "rebuffer_end": {"position_s": 95.0, "stall_ms": 1830},
    "view_end": {"position_s": 120.0, "watch_time_s": 85.5, "completed": False},
    "error": {"error_code": "bufferStalledError"},
}


def _event(kind: str, **changes) -> dict:
    event = {"event_id": str(uuid.uuid4()), "event_type": kind, "schema_version": 1, "video_id": "v123abc",
             "session_id": "s-1", "client_ts": NOW_MS - 5_000, **VALID.get(kind, {})}
    event.update(changes)
    return event


def test_the_hand_written_examples_cover_every_client_type():
    assert set(VALID) == set(CLIENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_a_valid_event_of_each_type_passes_with_exactly_its_fields(event_type):
    sent = _event(event_type, extra_field="dropped", viewer_id="someone-else", creator_id="c-forged")
    checked = check_client_event(sent, NOW_MS, 300)
    expected = {k: v for k, v in sent.items() if k not in ("extra_field", "viewer_id", "creator_id")}
    assert checked == expected
    # the schema a client is told about accepts it too
    jsonschema.Draft202012Validator(json_schema(event_type, with_server_fields=False)).validate(sent)


def test_event_ids_are_stored_in_one_spelling():
    spelled = str(uuid.uuid4())
    plain = spelled.replace("-", "")
    for spelling in (spelled.upper(), plain, "{" + spelled + "}", f"urn:uuid:{spelled}",
                     "-".join([plain[:4], plain[4:12], plain[12:16], plain[16:20], plain[20:]])):  # hyphens moved
        checked = check_client_event(_event("pause", event_id=spelling), NOW_MS, 300)
        assert checked["event_id"] == spelled, spelling


@pytest.mark.parametrize("change, reason, field", [
    ({"event_type": "teleport"}, "unknown_type", "event_type"),
    ({"event_type": 7}, "unknown_type", "event_type"),
    ({"event_type": "like"}, "server_side_type", "event_type"),
    ({"event_type": "comment"}, "server_side_type", "event_type"),
    ({"event_id": None}, "missing_field", "event_id"),
    ({"event_id": "not-a-uuid"}, "wrong_type", "event_id"),
    ({"video_id": "../etc/passwd"}, "wrong_type", "video_id"),
    ({"session_id": ""}, "wrong_type", "session_id"),
    ({"client_ts": "yesterday"}, "wrong_type", "client_ts"),
    ({"client_ts": 1.5e12}, "wrong_type", "client_ts"),
    ({"client_ts": NOW_MS + 301_000}, "future_timestamp", "client_ts"),
    ({"schema_version": 2}, "unsupported_schema_version", "schema_version"),
    ({"schema_version": True}, "wrong_type", "schema_version"),
    ({"position_s": -1}, "wrong_type", "position_s"),
    ({"position_s": "12"}, "wrong_type", "position_s"),
    ({"position_s": True}, "wrong_type", "position_s"),
])
def test_each_problem_has_its_reason_and_field(change, reason, field):
    rejection = check_client_event(_event("pause", **change), NOW_MS, 300)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (reason, field)


def test_a_missing_type_field_and_a_non_object_are_refused():
    event = _event("view_end")
    del event["completed"]
    assert check_client_event(event, NOW_MS, 300) == Rejection("missing_field", "completed", "view_end events carry completed")
    assert check_client_event(["pause"], NOW_MS, 300).reason == "not_an_object"
    no_type = _event("pause")
    del no_type["event_type"]
    assert check_client_event(no_type, NOW_MS, 300).reason == "missing_field"


def test_a_client_ts_up_to_the_limit_ahead_is_taken():
    assert isinstance(check_client_event(_event("pause", client_ts=NOW_MS + 300_000), NOW_MS, 300), dict)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_the_checks_and_the_published_json_schema_agree_on_broken_events(event_type):
    """Every field of the type, in turn missing, of the wrong JSON type, or below its minimum: the
    server's check refuses it exactly when the JSON Schema does."""
    validator = jsonschema.Draft202012Validator(json_schema(event_type, with_server_fields=False))
    base = _event(event_type)
    broken = []
    for name in [*COMMON, *CLIENT_TYPES[event_type]]:
        without = copy.deepcopy(base)
        del without[name]
        broken.append(without)
        for wrong in ("text", -5, 2.5, True, None, [], {}):
            changed = copy.deepcopy(base)
            changed[name] = wrong
            broken.append(changed)
    for event in broken:
        ours = isinstance(check_client_event(event, NOW_MS, 300), Rejection)
        theirs = not validator.is_valid(event)
        assert ours == theirs, event


def test_the_bus_schema_requires_the_server_fields_and_every_type_has_one():
    for event_type in [*CLIENT_TYPES, *SERVER_TYPES]:
        schema = json_schema(event_type)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert set(SERVER_FIELDS) <= set(schema["required"])
        assert schema["properties"]["event_type"] == {"const": event_type}


@pytest.mark.parametrize("agent, expected", [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
     "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
     "desktop"),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36",
     "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
     "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
     "mobile"),
    ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", "tablet"),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
     "tablet"),
    ("Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 TV Safari/537.36",
     "tv"),
    ("Roku4640X/DVP-7.70 (297.70E04154A)", "tv"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
    ("curl/8.5.0", "bot"),
    ("python-requests/2.32.3", "bot"),
    ("", "other"),
    (None, "other"),
    ("SomethingElse/1.0", "other"),
])
def test_device_class_from_the_user_agent(agent, expected):
    assert device_class(agent) == expected
