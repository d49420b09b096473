"""The media origin (/media/...), the playback URLs of GET /videos/<id>, the watch page, and nginx in front.

A tiny real ladder (ffmpeg: fMP4 HLS, a poster, a sprite and its WebVTT map) is published into
the media bucket under ``videos/<id>/`` as the transcode worker publishes it; the HTTP rules are
checked with the Flask test client, then through a real nginx and gunicorn started by the
supervisor's own service code (``reelhouse.ops.services.up``).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import requests

from media_workers.transcoding.publish import media_prefix, publish_folder
from reelhouse.domain.videos import Stage, Video, VideoStatus, new_video_id
from tests import procs

SECONDS = 4


# ---------------------------------------------------------------- a real ladder
def _codecs(init_segment: Path) -> str:
    """The RFC 6381 codec string of an H.264/AAC rendition, from its init segment's avcC box."""
    data = init_segment.read_bytes()
    profile_level = data[data.index(b"avcC") + 5:data.index(b"avcC") + 8].hex().upper()
    return f"avc1.{profile_level},mp4a.40.2"


def make_ladder(folder: Path, seconds: int = SECONDS, renditions=(("360p", 320, 180),)) -> Path:
    """``folder`` laid out as the worker's output: hls/<name>/..., hls/master.m3u8, poster, sprite."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for name, width, height in renditions:
        out = folder / "hls" / name
        out.mkdir(parents=True)
        subprocess.run([
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
            "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "2", "-hls_playlist_type", "vod",
            "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", str(out / "seg_%05d.m4s"),
            str(out / "playlist.m3u8"),
        ], check=True, timeout=60)
        segments = sorted(out.glob("seg_*.m4s"))
        peak = max(path.stat().st_size for path in segments) * 8 // 2
        average = sum(path.stat().st_size for path in segments) * 8 // seconds
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},'
                  f'CODECS="{_codecs(out / "init.mp4")}",RESOLUTION={width}x{height},FRAME-RATE=25.000',
                  f"{name}/playlist.m3u8"]
    (folder / "hls" / "master.m3u8").write_text("\n".join(lines) + "\n")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:duration=1",
                    "-frames:v", "1", str(folder / "poster.jpg")], check=True, timeout=30)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x180:duration={seconds}",
                    "-vf", "fps=0.5,scale=80:45,tile=2x1", "-frames:v", "1", str(folder / "sprite.jpg")],
                   check=True, timeout=30)
    (folder / "sprite.vtt").write_text(
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,80,45\n\n"
        "00:00:02.000 --> 00:00:04.000\nsprite.jpg#xywh=80,0,80,45\n")
    return folder


@pytest.fixture(scope="module")
def ladder_dir(tmp_path_factory) -> Path:
    return make_ladder(tmp_path_factory.mktemp("ladder"))


def make_ready_video(platform, creator_id: str, ladder: Path, title: str = "Test pattern") -> Video:
    """A catalog video taken through the state machine to ready, its ladder published."""
    video = Video(id=new_video_id(), creator_id=creator_id, title=title,
                  filename="pattern.mp4", size=1, status=VideoStatus.UPLOADING)
    platform.catalog.create_video(video)
    steps = [(VideoStatus.UPLOADING, None, VideoStatus.PROCESSING, Stage.PROBING),
             (VideoStatus.PROCESSING, Stage.PROBING, VideoStatus.PROCESSING, Stage.QUEUED),
             (VideoStatus.PROCESSING, Stage.QUEUED, VideoStatus.PROCESSING, Stage.TRANSCODING)]
    for step in steps:
        assert platform.catalog.compare_and_set_status(video.id, *step)
    publish_folder(platform.objects, platform.settings.bucket_media, media_prefix(video.id), ladder)
    renditions = [{"name": "360p", "width": 320, "height": 180}]
    assert platform.catalog.compare_and_set_status(video.id, VideoStatus.PROCESSING, Stage.TRANSCODING,
                                                   VideoStatus.READY, None, renditions=renditions, progress=100.0)
    return platform.catalog.get_video(video.id)


@pytest.fixture
def ready(platform, creator, ladder_dir) -> Video:
    return make_ready_video(platform, creator["id"], ladder_dir)


def stored(platform, video_id: str, name: str) -> bytes:
    return platform.objects.get(platform.settings.bucket_media, f"videos/{video_id}/{name}")


def etag_of(platform, video_id: str, name: str) -> str:
    return f'"{platform.objects.head(platform.settings.bucket_media, f"videos/{video_id}/{name}").etag}"'


SEGMENT = "hls/360p/seg_00000.m4s"
TYPES_AND_LIFETIMES = {
    "hls/master.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=5"),
    "hls/360p/playlist.m3u8": ("application/vnd.apple.mpegurl", "public, max-age=5"),
    "hls/360p/init.mp4": ("video/mp4", "public, max-age=31536000, immutable"),
    SEGMENT: ("video/iso.segment", "public, max-age=31536000, immutable"),
    "poster.jpg": ("image/jpeg", "public, max-age=31536000, immutable"),
    "sprite.jpg": ("image/jpeg", "public, max-age=31536000, immutable"),
    "sprite.vtt": ("text/vtt", "public, max-age=31536000, immutable"),
}


# ---------------------------------------------------------------- the origin, in process
def test_every_published_file_is_served_with_its_type_lifetime_etag_and_cors(client, platform, ready):
    for name, (content_type, cache_control) in TYPES_AND_LIFETIMES.items():
        answer = client.get(f"/media/{ready.id}/{name}")

        assert answer.status_code == 200, (name, answer.data[:200])
        assert answer.mimetype == content_type, name
        assert answer.headers["Cache-Control"] == cache_control, name
        assert answer.data == stored(platform, ready.id, name), name
        assert int(answer.headers["Content-Length"]) == len(answer.data)
        assert answer.headers["ETag"] == etag_of(platform, ready.id, name)
        assert answer.headers["Accept-Ranges"] == "bytes"
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Range" in answer.headers["Access-Control-Expose-Headers"]


def test_head_answers_the_headers_of_get_without_a_body(client, platform, ready):
    answer = client.head(f"/media/{ready.id}/{SEGMENT}")

    assert answer.status_code == 200
    assert answer.data == b""
    assert int(answer.headers["Content-Length"]) == len(stored(platform, ready.id, SEGMENT))
    assert answer.headers["ETag"] == etag_of(platform, ready.id, SEGMENT)
    assert answer.mimetype == "video/iso.segment"


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(client, platform, ready):
    etag = etag_of(platform, ready.id, SEGMENT)
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        answer = client.get(f"/media/{ready.id}/{SEGMENT}", headers={"If-None-Match": header})
        assert answer.status_code == 304, header
        assert answer.data == b""
        assert answer.headers["ETag"] == etag
        assert answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"

    changed = client.get(f"/media/{ready.id}/{SEGMENT}", headers={"If-None-Match": '"an-older-version"'})
    assert changed.status_code == 200 and changed.data == stored(platform, ready.id, SEGMENT)


def test_a_single_byte_range_answers_206_with_exactly_those_bytes(client, platform, ready):
    data = stored(platform, ready.id, SEGMENT)
    size = len(data)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=10-{size + 1000}": (10, size - 1),  # an end past the object is clamped
        "bytes=7-7": (7, 7),
    }
    for header, (first, last) in cases.items():
        answer = client.get(f"/media/{ready.id}/{SEGMENT}", headers={"Range": header})

        assert answer.status_code == 206, header
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
        assert answer.data == data[first:last + 1], header
        assert int(answer.headers["Content-Length"]) == last - first + 1
        assert answer.mimetype == "video/iso.segment"


def test_a_range_past_the_end_answers_416_naming_the_size(client, platform, ready):
    size = len(stored(platform, ready.id, SEGMENT))
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        answer = client.get(f"/media/{ready.id}/{SEGMENT}", headers={"Range": header})

        assert answer.status_code == 416, header
        assert answer.headers["Content-Range"] == f"bytes */{size}"
        assert answer.json["code"] == "range_not_satisfiable" and answer.json["field"] == "Range"


def test_ranges_it_does_not_serve_are_ignored_and_the_whole_object_sent(client, platform, ready):
    data = stored(platform, ready.id, SEGMENT)
    for headers in ({"Range": "bytes=0-9,20-29"}, {"Range": "items=0-9"}, {"Range": "bytes=abc"},
                    {"Range": "bytes=0-9", "If-Range": '"a-previous-version"'}):
        answer = client.get(f"/media/{ready.id}/{SEGMENT}", headers=headers)
        assert answer.status_code == 200, headers
        assert answer.data == data

    same_version = client.get(f"/media/{ready.id}/{SEGMENT}",
                              headers={"Range": "bytes=0-9", "If-Range": etag_of(platform, ready.id, SEGMENT)})
    assert same_version.status_code == 206 and same_version.data == data[:10]


@pytest.mark.parametrize("path, field", [
    ("/media/{id}/hls/%2e%2e/%2e%2e/%2e%2e/uploads/secret.mp4", "path"),
    ("/media/{id}/..%2F..%2Fsecret.mp4", "path"),
    ("/media/{id}/hls/./master.m3u8", "path"),
    ("/media/{id}/hls//master.m3u8", "path"),
    ("/media/{id}/hls/.hidden.m3u8", "path"),
    ("/media/{id}/hls%5C..%5Cmaster.m3u8", "path"),
    ("/media/{id}/hls/master%00.m3u8", "path"),
    ("/media/{id}/a/b/c/d/e.m4s", "path"),
    ("/media/..%2F..%2Fuploads/source.mp4", "video_id"),
    ("/media/{id}%2F..%2F..%2Fother/poster.jpg", "path"),
    ("/media/v%20x/poster.jpg", "video_id"),
])
def test_paths_that_could_leave_the_videos_folder_are_refused(client, ready, path, field):
    answer = client.get(path.format(id=ready.id))

    assert answer.status_code == 400, answer.data[:200]
    assert answer.mimetype == "application/problem+json"
    assert answer.json["code"] == "invalid_media_path"
    assert answer.json["field"] == field


def test_unknown_videos_files_and_types_answer_404_problems(client, ready):
    for path in ("/media/vnosuchvideo0000/hls/master.m3u8", f"/media/{ready.id}/hls/1080p/playlist.m3u8",
                 f"/media/{ready.id}/hls/360p/seg_00099.m4s", f"/media/{ready.id}/hls/360p",
                 f"/media/{ready.id}/notes.txt"):
        answer = client.get(path)

        assert answer.status_code == 404, path
        assert answer.mimetype == "application/problem+json"
        assert answer.json["code"] == "unknown_media"
        assert answer.headers["Cache-Control"] == "no-store"  # a cache must not remember "not yet published"


def test_cors_preflight_allows_range_requests_from_players_on_other_origins(client, ready):
    answer = client.options(f"/media/{ready.id}/{SEGMENT}", headers={
        "Origin": "http://player.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})

    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in answer.headers["Access-Control-Allow-Methods"]
    assert "Range" in answer.headers["Access-Control-Allow-Headers"]


# ---------------------------------------------------------------- what players are told
def test_a_ready_video_names_its_playback_urls_through_nginx(client, platform, ready):
    view = client.get(f"/videos/{ready.id}").json
    cdn = f"http://127.0.0.1:{platform.settings.nginx_port}"

    assert view["status"] == "ready"
    assert view["playback_url"] == f"{cdn}/media/{ready.id}/hls/master.m3u8"
    assert view["poster_url"] == f"{cdn}/media/{ready.id}/poster.jpg"
    assert view["sprite_vtt_url"] == f"{cdn}/media/{ready.id}/sprite.vtt"
    # the page on the address this client used (the test client's default host, no public_url set)
    assert view["watch_url"] == f"http://localhost/watch/{ready.id}"
    # each URL's path is one the origin serves
    for key in ("playback_url", "poster_url", "sprite_vtt_url"):
        assert client.get(view[key].removeprefix(cdn)).status_code == 200, key


def test_a_video_still_processing_has_no_playback_urls(client, platform, creator):
    video = Video(id="vprocessing00001", creator_id=creator["id"], title="Later", filename="x.mp4", size=1)
    platform.catalog.create_video(video)
    platform.catalog.compare_and_set_status(video.id, VideoStatus.UPLOADING, None,
                                            VideoStatus.PROCESSING, Stage.PROBING)

    view = client.get(f"/videos/{video.id}").json

    assert view["status"] == "processing"
    assert [view[key] for key in ("playback_url", "poster_url", "sprite_vtt_url", "watch_url")] == [None] * 4


# ---------------------------------------------------------------- the watch page
def test_the_watch_page_names_the_video_and_loads_hls_js_from_this_server(client, ready):
    page = client.get(f"/watch/{ready.id}")

    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<title>Test pattern · Reelhouse</title>" in html
    assert "alice" in html  # the creator
    assert f"/media/{ready.id}/poster.jpg" in html
    script = re.search(r'<script src="([^"]*hls[^"]*)"', html).group(1)
    assert not script.startswith("http"), "hls.js must come from this server, not a CDN"
    hls_js = client.get(script)
    assert hls_js.status_code == 200 and hls_js.mimetype == "text/javascript"
    assert b"hls.js" in hls_js.data[:2000] or len(hls_js.data) > 100_000
    assert client.get("/static/watch.js").status_code == 200
    # the master playlist is fetched while the scripts load, in the CORS mode hls.js will ask in
    playback_url = client.get(f"/videos/{ready.id}").json["playback_url"]
    preload = re.search(r'<link rel="preload" href="([^"]+)" as="fetch" crossorigin>', html)
    assert preload and preload.group(1) == playback_url


def test_the_watch_page_of_a_video_still_processing_carries_its_status_for_the_script(client, platform, creator):
    video = Video(id="vprocessing00002", creator_id=creator["id"], title="Soon <b>here</b>", filename="x.mp4", size=1)
    platform.catalog.create_video(video)
    platform.catalog.compare_and_set_status(video.id, VideoStatus.UPLOADING, None,
                                            VideoStatus.PROCESSING, Stage.PROBING)

    page = client.get(f"/watch/{video.id}")

    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-cache"
    html = page.get_data(as_text=True)
    assert "Soon &lt;b&gt;here&lt;/b&gt;" in html  # titles are text, never markup
    embedded = re.search(r'<script type="application/json" id="video-view">(.*?)</script>', html, re.S).group(1)
    assert json.loads(embedded)["status"] == "processing" and json.loads(embedded)["playback_url"] is None
    assert "poster=" not in html
    assert 'rel="preload"' not in html  # nothing to preload yet


def test_the_watch_page_of_an_unknown_video_is_a_404_page(client):
    page = client.get("/watch/vnosuchvideo0000")

    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "Video not found" in page.get_data(as_text=True)


# ---------------------------------------------------------------- through nginx
@pytest.fixture(scope="module")
def front(tmp_path_factory, redis_server, ladder_dir):
    """gunicorn and nginx started by `reelhouse up`'s own code on free ports, stopped by `down`.

    Once for the module (a start and stop cost ~3 s), with its own home and Redis db 1, so the
    other tests' flushes of db 0 leave it alone; each test reads objects no other test read.
    """
    from reelhouse.bootstrap import bootstrap
    from reelhouse.ops import services
    from reelhouse.settings import Settings

    stack = Settings(home=tmp_path_factory.mktemp("front-home"), redis_port=redis_server["port"], redis_db=1,
                     api_port=procs.free_port(), nginx_port=procs.free_port(), api_workers=1, api_threads=4)
    import redis

    with redis.Redis(port=stack.redis_port, db=stack.redis_db) as stack_redis:
        stack_redis.flushdb()
    platform = bootstrap(stack)
    creator, token = platform.accounts.add_creator("front-creator")
    video = make_ready_video(platform, creator.id, ladder_dir)
    lines: list[str] = []
    try:
        services.up(stack, ["api", "nginx"], say=lines.append)
        yield {"settings": stack, "platform": platform, "video": video, "lines": lines,
               "auth": {"Authorization": f"Bearer {token}"}}
    finally:
        services.down(stack, ["api", "nginx"], say=lines.append)
        platform.close()


def test_nginx_runs_from_the_home_and_reports_the_installed_version(front):
    from reelhouse.ops import nginx_server, services

    stack, lines = front["settings"], front["lines"]
    installed = subprocess.run([nginx_server.binary(), "-v"], capture_output=True, text=True).stderr
    status = services.status(stack)["nginx"]

    assert status["state"] == "running"
    assert status["version"] and f"nginx/{status['version']}" in installed
    assert status["url"] == f"http://127.0.0.1:{stack.nginx_port}"
    assert any(line.startswith("nginx") and "started" in line for line in lines), lines
    home = stack.home_dir
    assert (home / "nginx" / "nginx.conf").is_file() and (home / "run" / "nginx.pid").is_file()
    assert (home / "logs" / "nginx.log").is_file() and (home / "logs" / "nginx-access.log").is_file()


def test_a_segment_fetched_twice_through_nginx_is_a_cache_hit_and_ranges_work(front):
    stack, platform, ready = front["settings"], front["platform"], front["video"]
    url = f"{stack.nginx_url}/media/{ready.id}/{SEGMENT}"
    data = stored(platform, ready.id, SEGMENT)

    first = requests.get(url, timeout=10)
    second = requests.get(url, timeout=10)

    assert (first.status_code, first.headers["X-Cache-Status"]) == (200, "MISS")
    assert (second.status_code, second.headers["X-Cache-Status"]) == (200, "HIT")
    assert first.content == second.content == data
    assert second.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert second.headers["ETag"] == etag_of(platform, ready.id, SEGMENT)
    assert second.headers["Access-Control-Allow-Origin"] == "*"

    ranged = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert ranged.status_code == 206 and ranged.headers["X-Cache-Status"] == "HIT"
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert ranged.content == data[100:200]

    revalidated = requests.get(url, headers={"If-None-Match": second.headers["ETag"]}, timeout=10)
    assert revalidated.status_code == 304


def test_a_range_asked_first_through_nginx_is_answered_and_fills_the_cache(front):
    stack, platform, ready = front["settings"], front["platform"], front["video"]
    name = "hls/360p/seg_00001.m4s"
    url = f"{stack.nginx_url}/media/{ready.id}/{name}"
    data = stored(platform, ready.id, name)

    ranged = requests.get(url, headers={"Range": "bytes=-1000"}, timeout=10)
    whole = requests.get(url, timeout=10)

    assert ranged.status_code == 206 and ranged.content == data[-1000:]
    assert ranged.headers["Content-Range"] == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert (whole.headers["X-Cache-Status"], whole.content) == ("HIT", data)
    too_far = requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert too_far.status_code == 416


def test_playlists_pass_with_their_short_lifetime_and_misses_are_not_cached(front):
    stack, ready = front["settings"], front["video"]
    master = f"{stack.nginx_url}/media/{ready.id}/hls/master.m3u8"
    answers = [requests.get(master, timeout=10) for _ in range(2)]
    assert [a.headers["X-Cache-Status"] for a in answers] == ["MISS", "HIT"]
    assert answers[1].headers["Cache-Control"] == "public, max-age=5"
    assert answers[1].headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "360p/playlist.m3u8" in answers[1].text

    missing = f"{stack.nginx_url}/media/{ready.id}/hls/1080p/playlist.m3u8"
    misses = [requests.get(missing, timeout=10) for _ in range(2)]
    assert [(m.status_code, m.headers["X-Cache-Status"]) for m in misses] == [(404, "MISS")] * 2
    assert misses[1].json()["code"] == "unknown_media"


def test_through_nginx_every_url_a_client_is_told_is_on_the_address_it_used(front):
    stack, ready = front["settings"], front["video"]
    used = f"http://localhost:{stack.nginx_port}"  # a name for nginx that no setting holds

    view = requests.get(f"{stack.nginx_url}/videos/{ready.id}", headers={"Host": f"localhost:{stack.nginx_port}"},
                        timeout=10).json()
    page = requests.get(f"{stack.nginx_url}/watch/{ready.id}", headers={"Host": f"localhost:{stack.nginx_port}"},
                        timeout=10).text

    assert view["playback_url"] == f"{used}/media/{ready.id}/hls/master.m3u8"
    assert view["poster_url"] == f"{used}/media/{ready.id}/poster.jpg"
    assert view["sprite_vtt_url"] == f"{used}/media/{ready.id}/sprite.vtt"
    assert view["watch_url"] == f"{used}/watch/{ready.id}"
    assert f'poster="{used}/media/{ready.id}/poster.jpg"' in page
    assert f'<link rel="preconnect" href="{used}" crossorigin>' in page


def test_the_api_answers_through_nginx_and_large_request_bodies_pass(front):
    stack = front["settings"]
    assert requests.get(f"{stack.nginx_url}/healthz", timeout=5).json()["status"] == "ok"
    body = b"\0" * (3 * 1024 * 1024)  # past nginx's default 1 MiB body limit
    tus = {**front["auth"], "Tus-Resumable": "1.0.0"}
    created = requests.post(f"{stack.nginx_url}/files/", timeout=10, headers={
        **tus, "Upload-Length": str(len(body) + 1), "Upload-Metadata": "filename Ym9keS5iaW4="})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].startswith(f"{stack.nginx_url}/files/")  # the PATCH comes back this way
    upload_path = "/files/" + created.headers["Location"].rsplit("/files/", 1)[1]

    patched = requests.patch(f"{stack.nginx_url}{upload_path}", data=body, timeout=30, headers={
        **tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})

    assert patched.status_code == 204, patched.text
    assert patched.headers["Upload-Offset"] == str(len(body))
    head = requests.head(f"{stack.nginx_url}{upload_path}", timeout=10, headers=tus)
    assert head.headers["Upload-Offset"] == str(len(body))
