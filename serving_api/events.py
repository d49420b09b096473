"""``POST /events``: the player's events, as a JSON array or NDJSON (``application/x-ndjson``).

Errors in the body as a whole answer a problem document: not JSON, or not a list of objects (400);
more than ``events_max_batch`` events or ``events_max_bytes`` bytes (413); more events than the client
address's budget (``events_rate_limit`` per ``events_rate_window_s``): 429 with Retry-After. Errors in single events
answer ``{"accepted": n, "rejected": [{"index", "reason", "field"?, "detail"?}]}``: 202 while any event
was accepted, 400 when none was. Accepted events go onto the bus in one batch (services/events.py).
"""
from __future__ import annotations

import json

from flask import Blueprint, g, jsonify, request

from reelhouse.services.errors import BadRequest, PayloadTooLarge
from serving_api.auth import platform, spend_budget, viewer

bp = Blueprint("events", __name__)

NDJSON = "application/x-ndjson"


@bp.post("/events")
def take_events():
    settings = platform().settings
    events = _events_of(_body(settings.events_max_bytes), request.mimetype == NDJSON)
    if len(events) > settings.events_max_batch:
        raise PayloadTooLarge(f"a batch holds at most {settings.events_max_batch} events, not {len(events)}",
                              field="events", code="too_many_events")
    who = viewer()  # a bad bearer token is a 401 before anything is spent
    spend_budget("events", settings.events_rate_limit, settings.events_rate_window_s, len(events), "events")
    intake = platform().events.take(events, who, request.headers.get("User-Agent"))
    g.events = f"{intake.accepted}/{len(events)}"
    response = jsonify(accepted=intake.accepted, rejected=intake.rejected)
    response.status_code = 202 if intake.accepted else 400
    return response


def _body(max_bytes: int) -> bytes:
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"a batch of events is at most {max_bytes} bytes", field="body", code="body_too_large")
    body = request.stream.read(max_bytes + 1)  # also bounds a body sent without Content-Length
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"a batch of events is at most {max_bytes} bytes", field="body", code="body_too_large")
    return body


def _events_of(body: bytes, ndjson: bool) -> list:
    try:
        text = body.decode("utf-8")
        if ndjson:
            events = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            events = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not JSON" + (" lines (NDJSON)" if ndjson else ""), field="body",
                         code="not_json") from None
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        raise BadRequest("the body must be a JSON array of event objects (or NDJSON, one object per line)",
                         field="body", code="not_a_list_of_objects")
    if not events:
        raise BadRequest("the batch holds no event", field="body", code="no_events")
    return events
