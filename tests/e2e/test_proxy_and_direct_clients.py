"""The API as clients meet it: behind nginx (tus-js-client) and on a direct connection (urllib, sockets).

One gunicorn and one nginx, started by `reelhouse up`'s own code for the module, with no
``public_url``: what clients are told comes from the address they used. The drain bound is
lowered to 16 MiB so that one test can send a body past it without sending 128 MiB.

- Through nginx, tus-js-client is told an upload URL on nginx's address, and every PATCH of the
  upload (the resume's too) passes nginx: each one the API logged has its request id in nginx's log.
- Direct, a client that sends a 10 MiB body without ``Expect: 100-continue`` and reads the answer
  afterwards (urllib) reads each early refusal of the chunk API and of tus, not a reset.
"""
from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import re
import socket
import urllib.error
import urllib.request
import uuid
from contextlib import AbstractContextManager, nullcontext
from types import SimpleNamespace

import pytest
import requests

from reelhouse.settings import MiB, Settings
from tests import media, procs
from tests.e2e.node_tools import run_tus_js_client

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
BODY = b"\0" * (10 * MiB)
DRAIN_BOUND = 16 * MiB


@pytest.fixture(scope="module")
def edge(tmp_path_factory, redis_server):
    import redis

    from reelhouse.bootstrap import bootstrap
    from reelhouse.ops import services

    home = tmp_path_factory.mktemp("edge-home")
    settings = Settings(
        home=home, redis_port=redis_server["port"], redis_db=2,  # other tests flush db 0 between tests
        api_port=procs.free_port(), nginx_port=procs.free_port(), api_workers=1, api_threads=8,
        upload_chunk_size=5 * MiB, upload_part_size=5 * MiB, upload_lock_ttl_ms=1500,
        upload_drain_max_bytes=DRAIN_BOUND,
    )
    with redis.Redis(port=settings.redis_port, db=settings.redis_db) as stack_redis:
        stack_redis.flushdb()
    platform = bootstrap(settings)
    owner = platform.accounts.add_creator("edge-owner")[1]
    other = platform.accounts.add_creator("edge-other")[1]
    lines: list[str] = []
    try:
        services.up(settings, ["api", "nginx"], say=lines.append)
        yield SimpleNamespace(settings=settings, platform=platform, api=settings.api_url, nginx=settings.nginx_url,
                              owner={"Authorization": f"Bearer {owner}"}, owner_token=owner,
                              other={"Authorization": f"Bearer {other}"}, folder=home.parent)
    finally:
        services.down(settings, ["api", "nginx"], say=lines.append)
        platform.close()


def _api_log(edge) -> str:
    from reelhouse.ops.service import log_file

    return log_file(edge.settings, "api").read_text(errors="replace")


# ---------------------------------------------------------------- behind nginx
def test_tus_js_client_through_nginx_is_sent_back_through_nginx(node, edge):
    from reelhouse.ops import nginx_server

    clip = media.make_large_clip(edge.folder / "through-nginx.mkv", 3 * MiB)
    events = run_tus_js_client(node, SimpleNamespace(url=edge.nginx), edge.owner_token, clip,
                               abort_at=0.4, chunk_size=MiB)

    transcript = events["transcript"]
    for kind in ("created", "aborted", "resumed", "success"):
        assert kind in events, f"tus-js-client reported no {kind!r} event\n{transcript}"
    location = events["created"]["url"]
    assert location.startswith(f"{edge.nginx}/files/"), transcript  # nginx's address, not the API's
    assert events["success"]["url"] == location, transcript
    upload_id = location.rsplit("/", 1)[1]

    api_patches = re.findall(rf"request (\S+) PATCH /files/{upload_id} -> \d+ [\d.]+ms client=(\S+)", _api_log(edge))
    nginx_log = nginx_server.access_log(edge.settings).read_text()
    nginx_patches = re.findall(rf'"PATCH /files/{upload_id} HTTP/1\.1" .* id=(\S+)$', nginx_log, re.M)
    assert len(api_patches) >= 3, api_patches  # the 3 MiB file in 1 MiB PATCHes, cut and resumed
    missing = [request_id for request_id, _ in api_patches if request_id not in nginx_patches]
    assert not missing, f"PATCHes that bypassed nginx: {missing}\nnginx log:\n{nginx_log}"
    assert {client for _, client in api_patches} == {"127.0.0.1"}  # the client nginx saw (X-Forwarded-For)

    video = media.wait_until_probed_at(edge.nginx, events["created"]["videoId"])
    assert (video["status"], video["stage"], video["size"]) == ("processing", "queued", clip.stat().st_size)


# ---------------------------------------------------------------- early refusals on a direct connection
def _metadata(**values) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


def _tus_upload(edge, size: int) -> str:
    created = requests.post(f"{edge.api}/files/", timeout=10, headers={
        **TUS, **edge.owner, "Upload-Length": str(size), "Upload-Metadata": _metadata(filename="edge.mp4")})
    assert created.status_code == 201, created.text
    return created.headers["Location"].rsplit("/", 1)[1]


def _chunk_upload(edge) -> str:
    created = requests.post(f"{edge.api}/upload/init", json={"filename": "edge.mp4", "size": 20 * MiB},
                            headers=edge.owner, timeout=10)
    assert created.status_code == 201, created.text
    return created.json()["upload_id"]


def _completed_tus_upload(edge) -> str:
    upload_id = _tus_upload(edge, 1)
    done = requests.patch(f"{edge.api}/files/{upload_id}", data=b"x", timeout=30,
                          headers={**TUS, **edge.owner, "Upload-Offset": "0", "Content-Type": OCTETS})
    assert done.status_code == 204, done.text
    return upload_id


@dataclasses.dataclass
class Refused:
    """A request that is answered from its headers, and what it is answered."""

    method: str
    path: str
    headers: dict
    status: int
    code: str
    field: str
    hold: AbstractContextManager = dataclasses.field(default_factory=nullcontext)  # held while the request runs


def _patch(upload_id: str, auth: dict, status: int, code: str, field: str, offset: int = 0, **headers) -> Refused:
    headers = {**TUS, **auth, "Upload-Offset": str(offset), "Content-Type": OCTETS, **headers}
    return Refused("PATCH", f"/files/{upload_id}", headers, status, code, field)


def _chunk(upload_id: str, auth: dict, status: int, code: str, field: str) -> Refused:
    headers = {**auth, "Content-Type": "application/octet-stream"}
    return Refused("POST", f"/upload/chunk?upload_id={upload_id}&chunk_number=1", headers, status, code, field)


def _create(auth: dict, status: int, code: str, field: str, length: int = 20 * MiB, **headers) -> Refused:
    headers = {**TUS, **auth, "Upload-Length": str(length), "Content-Type": OCTETS,
               "Upload-Metadata": _metadata(filename="edge.mp4"), **headers}
    return Refused("POST", "/files/", headers, status, code, field)


def _locked_patch(edge) -> Refused:
    from reelhouse.services.upload_lock import upload_lock

    upload_id = _tus_upload(edge, 20 * MiB)
    refused = _patch(upload_id, edge.owner, 423, "upload_locked", "upload_id")
    refused.hold = upload_lock(edge.platform.coordination, upload_id, ttl_ms=10_000)  # another request's hold
    return refused


# Each is sent with the 10 MiB BODY; status, code and field as the tus spec and README say.
EARLY_REFUSALS = {
    "chunk, no token": lambda e: _chunk(_chunk_upload(e), {}, 401, "missing_token", "Authorization"),
    "chunk, another creator's upload": lambda e: _chunk(_chunk_upload(e), e.other, 403, "forbidden", "upload_id"),
    "chunk, unknown upload": lambda e: _chunk("unknown-upload", e.owner, 404, "unknown_upload", "upload_id"),
    "chunk, a tus upload": lambda e: _chunk(_tus_upload(e, 20 * MiB), e.owner, 409, "conflict", "upload_id"),
    "PATCH, no token": lambda e: _patch(_tus_upload(e, 20 * MiB), {}, 401, "missing_token", "Authorization"),
    "PATCH, another creator's upload": lambda e: _patch(_tus_upload(e, 20 * MiB), e.other,
                                                        403, "forbidden", "upload_id"),
    "PATCH, unknown upload": lambda e: _patch("unknown-upload", e.owner, 404, "unknown_upload", "upload_id"),
    "PATCH, offset mismatch": lambda e: _patch(_tus_upload(e, 20 * MiB), e.owner, 409, "offset_mismatch",
                                               "Upload-Offset", offset=5),
    "PATCH, complete upload": lambda e: _patch(_completed_tus_upload(e), e.owner, 409, "upload_complete",
                                               "Upload-Offset", offset=1),
    "PATCH, wrong Tus-Resumable": lambda e: _patch(_tus_upload(e, 20 * MiB), e.owner, 412, "unsupported_tus_version",
                                                   "Tus-Resumable", **{"Tus-Resumable": "0.2.2"}),
    "PATCH, more than the upload's size": lambda e: _patch(_tus_upload(e, MiB), e.owner, 413, "too_large",
                                                           "Content-Length"),
    "PATCH, locked upload": _locked_patch,
    "creation with upload, no token": lambda e: _create({}, 401, "missing_token", "Authorization"),
    "creation with upload, wrong Tus-Resumable": lambda e: _create(e.owner, 412, "unsupported_tus_version",
                                                                   "Tus-Resumable", **{"Tus-Resumable": "0.2.2"}),
    "creation with upload, too large": lambda e: _create(e.owner, 413, "too_large", "Upload-Length",
                                                         length=10 ** 13),
}


def _urllib_answer(url: str, method: str, headers: dict, body: bytes):
    """What urllib makes of the answer: it sends the whole body first (no Expect header), then reads."""
    sent = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, refused.read()


@pytest.mark.parametrize("case", EARLY_REFUSALS)
def test_an_early_refusal_reaches_a_client_that_sends_its_whole_body_first(edge, case):
    refused = EARLY_REFUSALS[case](edge)
    with refused.hold:
        status, headers, body = _urllib_answer(edge.api + refused.path, refused.method, refused.headers, BODY)

    assert status == refused.status, body[:300]
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["status"], problem["code"], problem["field"]) == (refused.status, refused.code, refused.field)


def test_a_drained_refusal_leaves_the_connection_open_for_the_next_request(edge):
    upload_id = _tus_upload(edge, 20 * MiB)
    connection = http.client.HTTPConnection("127.0.0.1", edge.settings.api_port, timeout=30)
    try:
        refusal = _patch(upload_id, edge.other, 403, "forbidden", "upload_id")
        connection.request("PATCH", refusal.path, body=BODY, headers=refusal.headers)
        refused = connection.getresponse()
        refused_body = refused.read()
        connection.request("HEAD", f"/files/{upload_id}", headers={**TUS, **edge.owner})
        head = connection.getresponse()
        head.read()
    finally:
        connection.close()

    assert refused.status == 403 and json.loads(refused_body)["code"] == "forbidden"
    assert refused.getheader("Connection") != "close"
    assert (head.status, head.getheader("Upload-Offset")) == (200, "0")  # none of the refused bytes was kept


def test_a_refused_body_past_the_drain_bound_still_gets_its_answer_and_a_closed_connection(edge):
    upload_id = _tus_upload(edge, 40 * MiB)
    request_id = f"past-bound-{uuid.uuid4().hex[:8]}"
    body = b"\0" * (DRAIN_BOUND + 8 * MiB)
    head = (f"PATCH /files/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1:{edge.settings.api_port}\r\n"
            f"Authorization: {edge.other['Authorization']}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
            f"Content-Type: {OCTETS}\r\nContent-Length: {len(body)}\r\nX-Request-Id: {request_id}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", edge.settings.api_port), timeout=30) as client:
        client.sendall(head.encode() + body)  # the whole body, as urllib or requests would send it
        answer = http.client.HTTPResponse(client)
        answer.begin()
        problem = json.loads(answer.read())
        after_answer = client.recv(1)  # b"": the server closed its side, gracefully (a reset would raise)

    assert answer.status == 403 and (problem["code"], problem["field"]) == ("forbidden", "upload_id")
    assert answer.getheader("Connection") == "close"
    assert after_answer == b""
    log = _api_log(edge)
    assert re.search(rf"request {request_id} PATCH /files/{upload_id} -> 403 .* client=127\.0\.0\.1", log)
    assert f"request {request_id} answered 403 before the end of its body (over {DRAIN_BOUND} bytes left" in log
    assert requests.get(f"{edge.api}/healthz", timeout=5).ok  # the worker serves on
