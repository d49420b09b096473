"""The seed's chunk API against real Redis, the local object store and SQLite."""
from __future__ import annotations

import base64
import hashlib

import pytest

from reelhouse.domain.jobs import TOPIC_TRANSCODE_JOBS
from reelhouse.settings import MiB
from tests.media import wait_until_probed

CHUNK = 5 * MiB


def init(client, auth, path, **extra):
    body = {"filename": path.name, "size": path.stat().st_size, "content_type": "video/x-matroska",
            "title": "My clip", "description": "d", "tags": ["demo", "Test"], "category": "Education", **extra}
    return client.post("/upload/init", json=body, headers=auth)


def send(client, auth, upload_id, number, data, digest=None):
    headers = {**auth, "Content-Type": "application/octet-stream"}
    if digest:
        headers["Content-Digest"] = digest
    return client.post(f"/upload/chunk?upload_id={upload_id}&chunk_number={number}", data=data, headers=headers)


def chunks_of(path, size=CHUNK):
    data = path.read_bytes()
    return [data[i:i + size] for i in range(0, len(data), size)]


def digest_of(data):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def test_chunked_upload_out_of_order_with_duplicates_stores_identical_bytes_and_queues_job(
        client, creator, clips, platform):
    path = clips["large"]
    started = init(client, creator["auth"], path)
    assert started.status_code == 201, started.json
    body = started.json
    assert body["chunk_size"] == CHUNK and body["video_id"].startswith("v")
    pieces = chunks_of(path)
    assert body["total_chunks"] == len(pieces) == 3

    video = client.get(f"/videos/{body['video_id']}").json
    assert video["status"] == "uploading" and video["bytes_received"] == 0

    for number in (3, 1):
        answer = send(client, creator["auth"], body["upload_id"], number, pieces[number - 1],
                      digest_of(pieces[number - 1]))
        assert answer.status_code == 200, answer.json
        assert answer.json["chunk_number"] == number and answer.json["status"] == "completed"
    # the same chunk twice is one chunk
    assert send(client, creator["auth"], body["upload_id"], 1, pieces[0]).status_code == 200

    status = client.get(f"/upload/{body['upload_id']}", headers=creator["auth"]).json
    assert status["received_chunks"] == [1, 3] and status["missing_chunks"] == [2]
    assert status["bytes_received"] == len(pieces[0]) + len(pieces[2])
    video = client.get(f"/videos/{body['video_id']}").json
    assert video["status"] == "uploading" and video["bytes_received"] == len(pieces[0]) + len(pieces[2])

    early = client.post("/upload/complete", json={"upload_id": body["upload_id"]}, headers=creator["auth"])
    assert early.status_code == 409 and early.json["missing_chunks"] == [2]

    assert send(client, creator["auth"], body["upload_id"], 2, pieces[1]).status_code == 200
    done = client.post("/upload/complete", json={"upload_id": body["upload_id"]}, headers=creator["auth"])
    assert done.status_code == 202, done.json
    assert done.json == {"video_id": body["video_id"], "status": "processing", "stage": "probing"}
    assert wait_until_probed(client, body["video_id"])["stage"] == "queued"

    stored = platform.objects.get(platform.settings.bucket_uploads, platform.catalog.get_video(body["video_id"]).source_key)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()

    video = client.get(f"/videos/{body['video_id']}").json
    assert (video["status"], video["stage"]) == ("processing", "queued")
    assert video["duration_s"] > 4 and (video["width"], video["height"]) == (320, 240)
    assert video["tags"] == ["demo", "test"] and video["creator"]["name"] == "alice"

    sub = platform.bus.subscribe(TOPIC_TRANSCODE_JOBS, "test", "t1")
    messages = sub.poll(10, 2.0)
    assert [m.value["video_id"] for m in messages] == [body["video_id"]]
    assert messages[0].key == body["video_id"]
    sub.close()
    # a retried complete (the answer was lost) reports the video and queues nothing more
    again = client.post("/upload/complete", json={"upload_id": body["upload_id"]}, headers=creator["auth"])
    assert again.status_code == 200
    assert again.json == {"video_id": body["video_id"], "status": "processing", "stage": "queued"}
    assert platform.bus.pending_count(TOPIC_TRANSCODE_JOBS, "test") == 1
    late = send(client, creator["auth"], body["upload_id"], 1, pieces[0])
    assert late.status_code == 409 and late.json["code"] == "upload_complete"
    status = client.get(f"/upload/{body['upload_id']}", headers=creator["auth"]).json
    assert status["complete"] and status["missing_chunks"] == [] and status["bytes_received"] == len(path.read_bytes())


def test_wrong_digest_is_refused_and_stores_nothing(client, creator, clips):
    path = clips["large"]
    body = init(client, creator["auth"], path).json
    piece = chunks_of(path)[0]
    bad = send(client, creator["auth"], body["upload_id"], 1, piece, digest_of(b"something else"))
    assert bad.status_code == 400 and bad.json["field"] == "Content-Digest"
    assert client.get(f"/upload/{body['upload_id']}", headers=creator["auth"]).json["received_chunks"] == []
    malformed = send(client, creator["auth"], body["upload_id"], 1, piece, "sha-256=:nope:")
    assert malformed.status_code == 400 and malformed.json["field"] == "Content-Digest"


def test_non_video_is_rejected_with_reason(client, creator, clips):
    for key in ("not_video", "image"):
        path = clips[key]
        body = init(client, creator["auth"], path).json
        assert send(client, creator["auth"], body["upload_id"], 1, path.read_bytes()).status_code == 200
        done = client.post("/upload/complete", json={"upload_id": body["upload_id"]}, headers=creator["auth"])
        assert done.status_code == 202 and done.json["stage"] == "probing"  # no verdict at completion
        video = wait_until_probed(client, body["video_id"])
        assert video["status"] == "rejected" and video["reason"]


@pytest.mark.parametrize("filename", ["../evil.mp4", "a/b.mp4", "..\\evil.mp4", "x\x00.mp4", "", "C:evil.mp4",
                                      "x\n.mp4", ".."])
def test_path_tricks_in_filenames_are_refused(client, creator, filename, platform):
    answer = client.post("/upload/init", json={"filename": filename, "size": 10, "content_type": "video/mp4"},
                         headers=creator["auth"])
    assert answer.status_code == 400 and answer.json["field"] == "filename"
    assert platform.catalog.videos_by_creator(creator["id"]).items == []


@pytest.mark.parametrize("body,status,field", [
    ({"size": 10, "content_type": "video/mp4"}, 400, "filename"),
    ({"filename": "a.mp4", "content_type": "video/mp4"}, 400, "size"),
    ({"filename": "a.mp4", "size": -1}, 400, "size"),
    ({"filename": "a.mp4", "size": "ten"}, 400, "size"),
    ({"filename": "a.mp4", "size": 10 ** 12}, 413, "size"),
    ({"filename": "a.mp4", "size": 10, "content_type": "text/html"}, 415, "content_type"),
    ({"filename": "a.mp4", "size": 10, "tags": "x" * 50}, 400, "tags"),
    ({"filename": "a.mp4", "size": 10, "tags": [1, 2]}, 400, "tags"),
    ({"filename": "a.mp4", "size": 10, "title": "t" * 201}, 400, "title"),
    ({"filename": "a.mp4", "size": 10, "chunk_size": 1024}, 400, "chunk_size"),
])
def test_bad_init_bodies_name_the_field(client, creator, body, status, field):
    answer = client.post("/upload/init", json=body, headers=creator["auth"])
    assert answer.status_code == status, answer.json
    assert answer.json["field"] == field and answer.json["code"] and answer.json["title"]
    assert answer.mimetype == "application/problem+json"


def test_non_json_init_is_refused(client, creator):
    answer = client.post("/upload/init", data="filename=a.mp4", headers=creator["auth"])
    assert answer.status_code == 415 and answer.json["field"] == "Content-Type"


def test_chunk_errors_leave_state_intact(client, creator, clips):
    path = clips["large"]
    body = init(client, creator["auth"], path).json
    pieces = chunks_of(path)
    assert send(client, creator["auth"], body["upload_id"], 1, pieces[0]).status_code == 200
    cases = [
        (send(client, creator["auth"], body["upload_id"], 0, pieces[0]), 400, "chunk_number"),
        (send(client, creator["auth"], body["upload_id"], 4, pieces[0]), 400, "chunk_number"),
        (send(client, creator["auth"], body["upload_id"], 2, pieces[1][:-1]), 400, "chunk"),
        (send(client, creator["auth"], body["upload_id"], 1, pieces[1][:100]), 400, "chunk"),
        (send(client, creator["auth"], "no-such-upload", 1, pieces[0]), 404, "upload_id"),
        (client.post(f"/upload/chunk?upload_id={body['upload_id']}&chunk_number=x", data=b"1",
                     headers=creator["auth"]), 400, "chunk_number"),
        (client.post("/upload/complete", json={}, headers=creator["auth"]), 400, "upload_id"),
    ]
    for answer, status, field in cases:
        assert (answer.status_code, answer.json["field"]) == (status, field), answer.json
    status = client.get(f"/upload/{body['upload_id']}", headers=creator["auth"]).json
    assert status["received_chunks"] == [1] and status["bytes_received"] == len(pieces[0])


def test_tokens_and_ownership(client, creator, other_creator, clips):
    path = clips["large"]
    no_token = client.post("/upload/init", json={"filename": "a.mp4", "size": 10})
    assert no_token.status_code == 401 and no_token.json["field"] == "Authorization"
    wrong = client.post("/upload/init", json={"filename": "a.mp4", "size": 10},
                        headers={"Authorization": "Bearer rh_wrong"})
    assert wrong.status_code == 401 and wrong.json["code"] == "invalid_token"
    malformed = client.post("/upload/init", json={"filename": "a.mp4", "size": 10},
                            headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401

    body = init(client, creator["auth"], path).json
    piece = chunks_of(path)[0]
    assert send(client, other_creator["auth"], body["upload_id"], 1, piece).status_code == 403
    assert client.get(f"/upload/{body['upload_id']}", headers=other_creator["auth"]).status_code == 403
    assert client.post("/upload/complete", json={"upload_id": body["upload_id"]},
                       headers=other_creator["auth"]).status_code == 403
    assert send(client, {}, body["upload_id"], 1, piece).status_code == 401
    status = client.get(f"/upload/{body['upload_id']}", headers=creator["auth"]).json
    assert status["received_chunks"] == []


def test_multipart_form_chunks_are_accepted(client, creator, clips):
    import io

    path = clips["small"]
    body = init(client, creator["auth"], path).json
    answer = client.post("/upload/chunk", data={"upload_id": body["upload_id"], "chunk_number": "1",
                                                "chunk": (io.BytesIO(path.read_bytes()), "blob")},
                         headers=creator["auth"], content_type="multipart/form-data")
    assert answer.status_code == 200, answer.json
    done = client.post("/upload/complete", json={"upload_id": body["upload_id"]}, headers=creator["auth"])
    assert done.json["status"] == "processing"


def test_unknown_video_is_404(client):
    answer = client.get("/videos/vdoesnotexist")
    assert answer.status_code == 404 and answer.json["code"] == "unknown_video"
