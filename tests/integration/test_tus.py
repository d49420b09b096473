"""tus 1.0 with a plain HTTP client (Flask's test client) against real Redis and the local store."""
from __future__ import annotations

import base64
import hashlib

import pytest

from reelhouse.settings import MiB
from tests.media import wait_until_probed

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def meta(**values):
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(client, auth, size, filename="clip.mkv", **extra):
    headers = {**TUS, **auth, "Upload-Length": str(size),
               "Upload-Metadata": meta(filename=filename, filetype="video/x-matroska", title="Tus clip",
                                       tags="a,b")}
    headers.update(extra)
    return client.post("/files/", headers=headers)


def patch(client, auth, location, offset, data, **extra):
    headers = {**TUS, **auth, "Upload-Offset": str(offset), "Content-Type": OCTETS, **extra}
    return client.patch(location, data=data, headers=headers)


def path_of(location):
    return "/files/" + location.rsplit("/", 1)[-1]


def test_options_advertises_extensions(client):
    answer = client.options("/files/")
    assert answer.status_code == 204
    assert answer.headers["Tus-Version"] == "1.0.0"
    extensions = set(answer.headers["Tus-Extension"].split(","))
    assert {"creation", "creation-with-upload", "termination", "checksum", "expiration"} <= extensions
    assert "sha256" in answer.headers["Tus-Checksum-Algorithm"].split(",")
    assert int(answer.headers["Tus-Max-Size"]) == 200 * MiB


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_upload_in_uneven_pieces_resumes_and_completes(client, creator, clips, platform, store_kind):
    data = clips["large"].read_bytes()
    created = create(client, creator["auth"], len(data))
    assert created.status_code == 201
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    assert created.headers["Upload-Expires"].endswith("GMT")
    assert client.get(f"/videos/{video_id}").json["status"] == "uploading"

    head = client.head(location, headers={**TUS, **creator["auth"]})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data)) and head.headers["Cache-Control"] == "no-store"

    # pieces smaller and larger than a part: 3 MiB, 4 MiB (crosses the 5 MiB part), then the rest
    offset = 0
    for size in (3 * MiB, 4 * MiB):
        answer = patch(client, creator["auth"], location, offset, data[offset:offset + size])
        assert answer.status_code == 204, answer.json
        offset += size
        assert answer.headers["Upload-Offset"] == str(offset)
        assert client.head(location, headers={**TUS, **creator["auth"]}).headers["Upload-Offset"] == str(offset)
    view = client.get(f"/videos/{video_id}").json
    assert view["status"] == "uploading" and view["bytes_received"] == offset

    stale = patch(client, creator["auth"], location, 0, data[:10])
    assert stale.status_code == 409 and stale.json["offset"] == offset
    assert client.head(location, headers={**TUS, **creator["auth"]}).headers["Upload-Offset"] == str(offset)

    last = patch(client, creator["auth"], location, offset, data[offset:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert (last.headers["Video-Status"], last.headers["Video-Stage"]) == ("processing", "probing")
    assert wait_until_probed(client, video_id)["stage"] == "queued"
    video = platform.catalog.get_video(video_id)
    assert (video.status.value, video.stage.value) == ("processing", "queued")
    assert video.title == "Tus clip" and video.tags == ["a", "b"]
    stored = platform.objects.get(video.source_bucket, video.source_key)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    # a client that lost the answer asks again: the upload reads as complete, nothing is re-queued
    head = client.head(location, headers={**TUS, **creator["auth"]})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(len(data))
    assert patch(client, creator["auth"], location, len(data), b"").status_code == 204
    assert patch(client, creator["auth"], location, 0, data[:10]).status_code == 409
    assert client.delete(location, headers={**TUS, **creator["auth"]}).status_code == 409
    # no tail or multipart left behind
    assert list(platform.objects.list(platform.settings.bucket_uploads, "tus-tails/")) == []
    assert platform.objects.list_multipart_uploads(platform.settings.bucket_uploads) == []


def test_creation_with_upload(client, creator, clips, platform):
    data = clips["small"].read_bytes()
    created = create(client, creator["auth"], len(data), **{"Content-Type": OCTETS})
    created = client.post("/files/", data=data, headers={**TUS, **creator["auth"], "Upload-Length": str(len(data)),
                                                         "Content-Type": OCTETS,
                                                         "Upload-Metadata": meta(filename="small.mp4")})
    assert created.status_code == 201 and created.headers["Upload-Offset"] == str(len(data))
    video = wait_until_probed(client, created.headers["Video-Id"])
    assert video["status"] == "processing" and video["stage"] == "queued"


def test_checksum_extension(client, creator, clips):
    data = clips["large"].read_bytes()[: 6 * MiB]
    created = create(client, creator["auth"], 12 * MiB)
    location = path_of(created.headers["Location"])
    good = "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()
    bad = "sha256 " + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    rejected = patch(client, creator["auth"], location, 0, data, **{"Upload-Checksum": bad})
    assert rejected.status_code == 460 and rejected.json["field"] == "Upload-Checksum"
    assert client.head(location, headers={**TUS, **creator["auth"]}).headers["Upload-Offset"] == "0"
    unknown = patch(client, creator["auth"], location, 0, data, **{"Upload-Checksum": "crc99 AAAA"})
    assert unknown.status_code == 400
    accepted = patch(client, creator["auth"], location, 0, data, **{"Upload-Checksum": good})
    assert accepted.status_code == 204 and accepted.headers["Upload-Offset"] == str(len(data))
    sha1 = "sha1 " + base64.b64encode(hashlib.sha1(data[:1000]).digest()).decode()
    assert patch(client, creator["auth"], location, len(data), data[:1000],
                 **{"Upload-Checksum": sha1}).status_code == 204


def test_termination_removes_upload_and_video(client, creator, clips, platform):
    data = clips["large"].read_bytes()
    created = create(client, creator["auth"], len(data))
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    patch(client, creator["auth"], location, 0, data[: 6 * MiB])
    assert client.delete(location, headers={**TUS, **creator["auth"]}).status_code == 204
    assert client.head(location, headers={**TUS, **creator["auth"]}).status_code == 404
    assert client.get(f"/videos/{video_id}").status_code == 404
    assert platform.objects.list_multipart_uploads(platform.settings.bucket_uploads) == []
    assert list(platform.objects.list(platform.settings.bucket_uploads, "tus-tails/")) == []


def test_protocol_errors(client, creator, other_creator, platform):
    created = create(client, creator["auth"], 7 * MiB)
    location = path_of(created.headers["Location"])
    wrong_version = client.head(location, headers={"Tus-Resumable": "0.2.2", **creator["auth"]})
    assert wrong_version.status_code == 412 and wrong_version.headers["Tus-Version"] == "1.0.0"
    assert client.post("/files/", headers={**creator["auth"]}).status_code == 412
    assert patch(client, creator["auth"], location, 0, b"x", **{"Content-Type": "text/plain"}).status_code == 415
    no_offset = client.patch(location, data=b"x", headers={**TUS, **creator["auth"], "Content-Type": OCTETS})
    assert no_offset.status_code == 400 and no_offset.json["field"] == "Upload-Offset"
    too_much = patch(client, creator["auth"], location, 0, b"x" * (7 * MiB + 1))
    assert too_much.status_code == 413
    assert create(client, creator["auth"], 10 ** 12).status_code == 413
    no_length = client.post("/files/", headers={**TUS, **creator["auth"]})
    assert no_length.status_code == 400 and no_length.json["field"] == "Upload-Length"
    bad_meta = create(client, creator["auth"], 10, **{"Upload-Metadata": "filename !!notbase64"})
    assert bad_meta.status_code == 400 and bad_meta.json["field"] == "Upload-Metadata"
    trick = create(client, creator["auth"], 10, filename="../../etc/passwd")
    assert trick.status_code == 400 and trick.json["metadata_key"] == "filename"
    assert client.head("/files/unknown", headers={**TUS, **creator["auth"]}).status_code == 404
    assert client.head(location, headers={**TUS, **other_creator["auth"]}).status_code == 403
    assert patch(client, other_creator["auth"], location, 0, b"x").status_code == 403
    assert client.delete(location, headers={**TUS, **other_creator["auth"]}).status_code == 403
    assert client.head(location, headers=TUS).status_code == 401
    assert client.head(location, headers={**TUS, **creator["auth"]}).headers["Upload-Offset"] == "0"


def test_a_second_writer_gets_423_while_the_first_holds_the_upload(client, creator, platform):
    created = create(client, creator["auth"], 7 * MiB)
    upload_id = created.headers["Location"].rsplit("/", 1)[-1]
    from reelhouse.services.upload_lock import upload_lock

    with upload_lock(platform.coordination, upload_id, ttl_ms=5_000):  # another request's hold
        busy = patch(client, creator["auth"], f"/files/{upload_id}", 0, b"x" * 100)
        assert busy.status_code == 423
    assert patch(client, creator["auth"], f"/files/{upload_id}", 0, b"x" * 100).status_code == 204


def test_method_override_tunnels_patch(client, creator):
    created = create(client, creator["auth"], 7 * MiB)
    location = path_of(created.headers["Location"])
    tunnelled = client.post(location, data=b"y" * 10, headers={**TUS, **creator["auth"], "Upload-Offset": "0",
                                                               "Content-Type": OCTETS,
                                                               "X-HTTP-Method-Override": "PATCH"})
    assert tunnelled.status_code == 204 and tunnelled.headers["Upload-Offset"] == "10"


@pytest.mark.parametrize("store_kind", ["s3"])  # tails exist where tus bytes are cut into parts
def test_stale_tail_from_a_crash_is_ignored(client, creator, clips, platform):
    """A request that died after flushing a part but before deleting the old tail leaves a stale tail."""
    data = clips["large"].read_bytes()
    created = create(client, creator["auth"], len(data))
    location = path_of(created.headers["Location"])
    upload_id = location.rsplit("/", 1)[-1]
    patch(client, creator["auth"], location, 0, data[: 2 * MiB])  # tail 00001 holds 2 MiB
    bucket = platform.settings.bucket_uploads
    session = platform.uploads.sessions.get(upload_id)
    # simulate the crash: part 1 flushed, old tail still there
    platform.objects.upload_part(bucket, session.key, session.multipart_id, 1, data[: 5 * MiB])
    head = client.head(location, headers={**TUS, **creator["auth"]})
    assert head.headers["Upload-Offset"] == str(5 * MiB)
    assert patch(client, creator["auth"], location, 5 * MiB, data[5 * MiB:]).status_code == 204
    video = platform.catalog.get_video(created.headers["Video-Id"])
    assert hashlib.sha256(platform.objects.get(bucket, video.source_key)).digest() == hashlib.sha256(data).digest()


def test_abandoned_uploads_are_swept(client, creator, clips, platform, redis_client):
    import time

    data = clips["large"].read_bytes()
    created = create(client, creator["auth"], len(data))
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    patch(client, creator["auth"], location, 0, data[: 6 * MiB])
    upload_id = location.rsplit("/", 1)[-1]
    assert platform.uploads.sweep_expired() == []  # still alive
    redis_client.delete(f"upload:{upload_id}")  # what the TTL does after an hour of silence
    swept = platform.uploads.sweep_expired(now=time.time() + platform.settings.upload_ttl_s + 1)
    assert swept == [upload_id]
    video = client.get(f"/videos/{video_id}").json
    assert video["status"] == "failed" and "abandoned" in video["reason"]
    assert platform.objects.list_multipart_uploads(platform.settings.bucket_uploads) == []
    assert list(platform.objects.list(platform.settings.bucket_uploads, "tus-tails/")) == []
    assert redis_client.ttl(f"upload:by-video:{video_id}") == -2


def _store_bytes(platform, session, offset, data):
    """Bytes stored the way the upload stores them, without a request (as a request that died would)."""
    if session.storage == "appends":
        platform.objects.append(session.bucket, session.key, session.multipart_id, offset, [data])
    else:
        assert offset % platform.settings.upload_part_size == 0
        number = offset // platform.settings.upload_part_size + 1
        platform.objects.upload_part(session.bucket, session.key, session.multipart_id, number, data)
        for tail in list(platform.objects.list(session.bucket, session.tails_prefix)):
            platform.objects.delete(session.bucket, tail.key)


def _die_inside_finish(platform, upload_id):
    """What a SIGKILL between completing the object and probing it leaves behind."""
    from reelhouse.domain.videos import Stage, VideoStatus
    from reelhouse.services.tus_parts import tus_progress

    session = platform.uploads.sessions.get(upload_id)
    platform.catalog.compare_and_set_status(session.video_id, VideoStatus.UPLOADING, None,
                                            VideoStatus.PROCESSING, Stage.PROBING)
    if session.storage == "appends":
        platform.objects.complete_append(session.bucket, session.key, session.multipart_id)
    else:
        parts = tus_progress(platform.objects, session).parts
        platform.objects.complete_multipart(session.bucket, session.key, session.multipart_id, parts)
    return session


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_a_crash_inside_finish_is_repaired_by_the_next_head(client, creator, clips, platform):
    data = clips["large"].read_bytes()
    created = create(client, creator["auth"], len(data))
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    upload_id = location.rsplit("/", 1)[-1]
    # all but the last byte arrive normally; the last one is "flushed" and then the process dies
    patch(client, creator["auth"], location, 0, data[:10 * MiB])
    session = platform.uploads.sessions.get(upload_id)
    _store_bytes(platform, session, 10 * MiB, data[10 * MiB:])
    _die_inside_finish(platform, upload_id)
    assert client.get(f"/videos/{video_id}").json["stage"] == "probing"

    head = client.head(location, headers={**TUS, **creator["auth"]})
    assert head.status_code == 200 and head.headers["Upload-Offset"] == str(len(data))
    video = wait_until_probed(client, video_id)
    assert (video["status"], video["stage"]) == ("processing", "queued")
    assert platform.bus.pending_count("transcode-jobs", "transcoders") == 1


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_the_sweeper_finishes_an_upload_whose_client_never_came_back(client, creator, clips, platform, redis_client):
    import time

    data = clips["small"].read_bytes()
    created = create(client, creator["auth"], len(data))
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    upload_id = location.rsplit("/", 1)[-1]
    session = platform.uploads.sessions.get(upload_id)
    _store_bytes(platform, session, 0, data)
    _die_inside_finish(platform, upload_id)
    redis_client.delete(f"upload:{upload_id}")  # the TTL ran out
    assert platform.uploads.sweep_expired(now=time.time() + platform.settings.upload_ttl_s + 1) == [upload_id]
    video = wait_until_probed(client, video_id)
    assert (video["status"], video["stage"]) == ("processing", "queued")
    assert platform.bus.pending_count("transcode-jobs", "transcoders") == 1


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_creation_defer_length_takes_the_length_in_a_later_patch(client, creator, clips, platform):
    """A stream of unknown length (a recording in progress): the length comes with a later PATCH."""
    data = clips["large"].read_bytes()
    auth = {**TUS, **creator["auth"]}
    created = client.post("/files/", headers={**auth, "Upload-Defer-Length": "1",
                                              "Upload-Metadata": meta(filename="live.mkv")})
    assert created.status_code == 201, created.json
    location, video_id = path_of(created.headers["Location"]), created.headers["Video-Id"]
    head = client.head(location, headers=auth)
    assert head.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in head.headers

    first = 6 * MiB + 3  # more than a part, less than the whole, without a length
    assert patch(client, creator["auth"], location, 0, data[:first]).status_code == 204
    assert client.get(f"/videos/{video_id}").json["status"] == "uploading"
    too_short = patch(client, creator["auth"], location, first, b"", **{"Upload-Length": str(first - 1)})
    assert too_short.status_code == 400 and too_short.json["field"] == "Upload-Length"
    assert client.head(location, headers=auth).headers["Upload-Offset"] == str(first)

    last = patch(client, creator["auth"], location, first, data[first:], **{"Upload-Length": str(len(data))})
    assert last.status_code == 204 and last.headers["Upload-Offset"] == str(len(data))
    assert last.headers["Video-Stage"] == "probing"
    video = wait_until_probed(client, video_id)
    assert (video["status"], video["stage"], video["size"]) == ("processing", "queued", len(data))
    head = client.head(location, headers=auth)
    assert head.headers["Upload-Length"] == str(len(data)) and "Upload-Defer-Length" not in head.headers
    stored = platform.catalog.get_video(video_id)
    assert hashlib.sha256(platform.objects.get(stored.source_bucket, stored.source_key)).digest() == \
        hashlib.sha256(data).digest()


def test_creation_defer_length_refuses_contradictions(client, creator):
    auth = {**TUS, **creator["auth"], "Upload-Metadata": meta(filename="a.mp4")}
    both = client.post("/files/", headers={**auth, "Upload-Defer-Length": "1", "Upload-Length": "10"})
    assert both.status_code == 400 and both.json["field"] == "Upload-Defer-Length"
    wrong = client.post("/files/", headers={**auth, "Upload-Defer-Length": "2"})
    assert wrong.status_code == 400 and wrong.json["field"] == "Upload-Defer-Length"
    neither = client.post("/files/", headers=auth)
    assert neither.status_code == 400 and neither.json["field"] == "Upload-Length"
    assert "creation-defer-length" in client.options("/files/").headers["Tus-Extension"].split(",")

    created = client.post("/files/", headers={**auth, "Upload-Length": "100"})
    location = path_of(created.headers["Location"])
    other = patch(client, creator["auth"], location, 0, b"x" * 10, **{"Upload-Length": "99"})
    assert other.status_code == 400 and other.json["field"] == "Upload-Length"
    assert client.head(location, headers={**TUS, **creator["auth"]}).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_concatenation_joins_partial_uploads_into_one_video(client, creator, clips, platform):
    """tus-js-client's parallelUploads: pieces uploaded side by side, then one final upload of them."""
    data = clips["large"].read_bytes()
    auth = {**TUS, **creator["auth"]}
    cuts = [0, 3 * MiB + 5, 7 * MiB, len(data)]  # uneven pieces, one across a part boundary
    urls = []
    for start, end in zip(cuts, cuts[1:]):
        created = client.post("/files/", headers={**auth, "Upload-Concat": "partial", "Upload-Length": str(end - start)})
        assert created.status_code == 201, created.json
        assert created.headers["Upload-Concat"] == "partial" and "Video-Id" not in created.headers
        location = path_of(created.headers["Location"])
        done = patch(client, creator["auth"], location, 0, data[start:end])
        assert done.status_code == 204 and "Video-Status" not in done.headers  # a piece is no video
        head = client.head(location, headers=auth)
        assert (head.headers["Upload-Offset"], head.headers["Upload-Concat"]) == (str(end - start), "partial")
        urls.append(created.headers["Location"])

    final = client.post("/files/", headers={**auth, "Upload-Concat": "final;" + " ".join(urls),
                                            "Upload-Metadata": meta(filename="joined.mkv", title="Joined")})
    assert final.status_code == 201, final.json
    assert (final.headers["Upload-Offset"], final.headers["Video-Stage"]) == (str(len(data)), "probing")
    video = wait_until_probed(client, final.headers["Video-Id"])
    assert (video["status"], video["stage"], video["size"], video["title"]) == (
        "processing", "queued", len(data), "Joined")
    stored = platform.catalog.get_video(video["id"])
    assert hashlib.sha256(platform.objects.get(stored.source_bucket, stored.source_key)).digest() == \
        hashlib.sha256(data).digest()
    assert list(platform.objects.list(platform.settings.bucket_uploads, "partials/")) == []
    location = path_of(final.headers["Location"])
    head = client.head(location, headers=auth)
    assert head.headers["Upload-Concat"] == "final;" + " ".join(urls)
    assert head.headers["Upload-Offset"] == str(len(data))
    assert patch(client, creator["auth"], location, 0, b"x").status_code == 403
    assert "concatenation" in client.options("/files/").headers["Tus-Extension"].split(",")
    for length in ("0", None):  # a partial upload needs a length, and one of at least a byte
        headers = {**auth, "Upload-Concat": "partial", **({"Upload-Length": length} if length else {})}
        empty = client.post("/files/", headers=headers)
        assert empty.status_code == 400 and empty.json["field"] == "Upload-Length", empty.json


def test_concatenation_refuses_pieces_that_are_unfinished_unknown_or_someone_elses(
        client, creator, other_creator, platform):
    auth = {**TUS, **creator["auth"]}

    def partial(who, size, send=b""):
        created = client.post("/files/", headers={**TUS, **who, "Upload-Concat": "partial", "Upload-Length": str(size)})
        if send:
            assert patch(client, who, path_of(created.headers["Location"]), 0, send).status_code == 204
        return created.headers["Location"]

    mine = partial(creator["auth"], 4, b"abcd")
    unfinished = partial(creator["auth"], 10, b"abc")
    theirs = partial(other_creator["auth"], 4, b"wxyz")
    videos_before = len(platform.catalog.videos_by_creator(creator["id"]).items)
    cases = [({"Upload-Concat": f"final;{mine} {unfinished}"}, 400),
             ({"Upload-Concat": f"final;{mine} {theirs}"}, 403),
             ({"Upload-Concat": f"final;{mine} /files/0123456789abcdef"}, 400),
             ({"Upload-Concat": f"final;{mine} {mine}"}, 400),
             ({"Upload-Concat": "final;"}, 400),
             ({"Upload-Concat": "sideways"}, 400),
             ({"Upload-Concat": f"final;{mine}", "Upload-Length": "4"}, 400)]
    for headers, status in cases:
        refused = client.post("/files/", headers={**auth, **headers, "Upload-Metadata": meta(filename="a.mp4")})
        assert refused.status_code == status, (headers, refused.json)
        assert refused.json["field"] in ("Upload-Concat", "Upload-Length"), refused.json
    assert len(platform.catalog.videos_by_creator(creator["id"]).items) == videos_before  # nothing was made
    assert client.head(path_of(mine), headers=auth).headers["Upload-Offset"] == "4"  # the pieces are intact
