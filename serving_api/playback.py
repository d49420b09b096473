"""The media origin: ``GET|HEAD /media/<video_id>/<path>`` streams a published ladder from the object store.

nginx caches what this answers (``reelhouse.ops.nginx_server``), so the headers here are the
caching policy of the whole CDN path: segments, init segments, images and sprite maps never
change under their name (a new ladder replaces them only after its master playlist is
removed), so they are immutable for a year; playlists may be replaced by a re-transcode and
live a few seconds. Players on another origin (the page through the API port, media through
nginx) read these with CORS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional

from flask import Blueprint, Response, g, request
from werkzeug.http import http_date

from reelhouse.ports import NoSuchKey, ObjectInfo
from serving_api.auth import platform
from serving_api.problems import problem

bp = Blueprint("playback", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"
PLAYLIST = "public, max-age=5"
MEDIA_TYPES = {  # extension → (Content-Type, Cache-Control)
    "m3u8": ("application/vnd.apple.mpegurl", PLAYLIST),
    "m4s": ("video/iso.segment", IMMUTABLE),
    "mp4": ("video/mp4", IMMUTABLE),
    "jpg": ("image/jpeg", IMMUTABLE),
    "vtt": ("text/vtt; charset=utf-8", IMMUTABLE),
}
STREAM_BLOCK = 256 * 1024
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges, ETag",
}

_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# One plain name per folder, as the ladder layout writes them ("hls/720p/seg_00000.m4s"): no
# name starts with '.', so nothing can climb out of the video's prefix ('..', '.', empty, backslash, NUL).
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_MAX_DEPTH = 4


@bp.route("/media/<video_id>/<path:rest>", methods=["GET", "HEAD", "OPTIONS"])
def media(video_id: str, rest: str):
    if not _VIDEO_ID.match(video_id):
        return _refused("video_id", "a video id is 1-64 letters, digits, '-' or '_'")
    g.video_id = video_id
    segments = rest.split("/")
    if len(segments) > _MAX_DEPTH or not all(_SEGMENT.match(segment) for segment in segments):
        return _refused("path", "a media path is up to 4 plain names (letters, digits, '.', '-', '_') "
                                "separated by '/', with no '.' or '..' segments")
    extension = segments[-1].rpartition(".")[2].lower()
    if extension not in MEDIA_TYPES:
        return _missing(f"no media of type {extension!r} is published; the origin serves "
                        f"{', '.join('.' + known for known in MEDIA_TYPES)}")
    if request.method == "OPTIONS":
        return _preflight()

    settings = platform().settings
    key = f"videos/{video_id}/{rest}"
    try:
        info = platform().objects.head(settings.bucket_media, key)
    except NoSuchKey:
        return _missing(f"video {video_id} has no published {rest!r}: it is unknown, not ready yet, or was removed")
    content_type, cache_control = MEDIA_TYPES[extension]
    headers = {
        **CORS,
        "Content-Type": content_type,
        "Cache-Control": cache_control,
        "ETag": f'"{info.etag}"',
        "Accept-Ranges": "bytes",
    }
    if info.last_modified:
        headers["Last-Modified"] = http_date(info.last_modified)

    if _matches_if_none_match(request.headers.get("If-None-Match"), info.etag):
        return Response(status=304, headers=headers)
    wanted = _requested_range(info)
    if isinstance(wanted, _Unsatisfiable):
        return _unsatisfiable(info, headers)
    if wanted is None:
        return _body(200, info, None, headers)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{info.size}"
    return _body(206, info, wanted, headers)


# ---------------------------------------------------------------- answers
def _body(status: int, info: ObjectInfo, wanted: Optional["_ByteRange"], headers: dict) -> Response:
    length = info.size if wanted is None else wanted.end - wanted.start + 1
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status=status, headers=headers)
    byte_range = None if wanted is None else (wanted.start, wanted.end)
    stream = platform().objects.open(info.bucket, info.key, byte_range)
    response = Response(_blocks(stream), status=status, headers=headers, direct_passthrough=True)
    response.call_on_close(stream.close)  # also when the client goes away before the first block
    return response


def _blocks(stream) -> Iterator[bytes]:
    try:
        for block in iter(lambda: stream.read(STREAM_BLOCK), b""):
            yield block
    finally:
        stream.close()


def _unsatisfiable(info: ObjectInfo, headers: dict) -> Response:
    response = problem(416, "range_not_satisfiable",
                       f"the requested range lies outside the {info.size}-byte object", field="Range", size=info.size)
    response.headers["Content-Range"] = f"bytes */{info.size}"
    for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "ETag", "Accept-Ranges"):
        response.headers[name] = headers[name]
    return response


def _preflight() -> Response:
    return Response(status=204, headers={
        **CORS,
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Range, If-None-Match, If-Range",
        "Access-Control-Max-Age": "86400",
    })


def _refused(field: str, title: str) -> Response:
    response = problem(400, "invalid_media_path", title, field=field)
    response.headers.update({**CORS, "Cache-Control": "no-store"})
    return response


def _missing(title: str) -> Response:
    response = problem(404, "unknown_media", title, field="path")
    # A playlist asked for a moment before its ladder is published must not stick in a cache.
    response.headers.update({**CORS, "Cache-Control": "no-store"})
    return response


# ---------------------------------------------------------------- conditional and range requests
def _matches_if_none_match(header: Optional[str], etag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` or any listed tag equal to ours, W/ or not."""
    if not header:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    return any(tag == "*" or tag.removeprefix("W/").strip('"') == etag for tag in tags)


@dataclass(frozen=True)
class _ByteRange:
    start: int
    end: int  # inclusive


class _Unsatisfiable:
    pass


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _requested_range(info: ObjectInfo):
    """The one byte range asked for, None for the whole object, or _Unsatisfiable.

    As RFC 9110 allows, a Range this origin does not serve (other units, several ranges, a
    malformed header, or an If-Range naming another version) is ignored: the whole object
    is sent with 200, which every player handles.
    """
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range and if_range.strip('"') != info.etag:
        return None
    match = _RANGE.match(header.replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or info.size == 0:
            return _Unsatisfiable()
        return _ByteRange(max(0, info.size - suffix), info.size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= info.size:
        return _Unsatisfiable()
    end = int(last) if last else info.size - 1
    return _ByteRange(start, min(end, info.size - 1))
