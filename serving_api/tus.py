"""tus 1.0 at /files/: core, creation, creation-with-upload, termination, checksum, expiration."""
from __future__ import annotations

import base64
import binascii
from email.utils import format_datetime
from datetime import datetime, timezone

from flask import Blueprint, Response, g, request

from reelhouse.services.errors import (
    BadRequest, ServiceError, UnsupportedMediaType,
)
from reelhouse.services.tus_concat import partial_ids
from reelhouse.services.upload_requests import check_new_upload
from serving_api.auth import platform, principal
from serving_api.problems import problem
from serving_api.public_urls import site_url

bp = Blueprint("tus", __name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation"
CHECKSUMS = {"sha1": "sha1", "sha256": "sha256", "md5": "md5"}
EXPOSED = ("Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, "
           "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, Upload-Defer-Length, Upload-Concat, "
           "Video-Id, Video-Status, Video-Stage")
OFFSET_TYPE = "application/offset+octet-stream"


def _expires(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=timezone.utc), usegmt=True)


@bp.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers["Access-Control-Expose-Headers"] = EXPOSED
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.before_request
def _check_version():
    if request.method == "OPTIONS":
        return None
    version = request.headers.get("Tus-Resumable")
    if version != TUS_VERSION:
        response = problem(412, "unsupported_tus_version",
                           f"this server speaks tus {TUS_VERSION}; send 'Tus-Resumable: {TUS_VERSION}'",
                           field="Tus-Resumable")
        response.headers["Tus-Version"] = TUS_VERSION
        return response
    return None


def _metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key base64,key2 base64`` (values may be absent)."""
    parsed: dict[str, str] = {}
    if not header:
        return parsed
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or not key.isascii() or any(ch.isspace() for ch in key) or key in parsed:
            raise BadRequest(f"Upload-Metadata has an invalid or repeated key {key!r}", field="Upload-Metadata")
        try:
            parsed[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text",
                             field="Upload-Metadata") from None
    return parsed


def _int_header(name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a non-negative whole number", field=name)
    return int(raw)


def _checksum() -> tuple[str, bytes] | None:
    raw = request.headers.get("Upload-Checksum")
    if not raw:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise BadRequest(f"unsupported checksum algorithm {algorithm!r}; use one of {', '.join(CHECKSUMS)}",
                         field="Upload-Checksum")
    try:
        return CHECKSUMS[algorithm], base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum value must be base64", field="Upload-Checksum") from None


@bp.route("/files/", methods=["OPTIONS"])
@bp.route("/files/<upload_id>", methods=["OPTIONS"])
def options(upload_id: str | None = None):
    response = Response(status=204)
    response.headers.update({
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(platform().settings.upload_max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        "Access-Control-Allow-Methods": "POST, HEAD, PATCH, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Upload-Length, Upload-Offset, "
        "Upload-Metadata, Upload-Checksum, Upload-Defer-Length, Upload-Concat, Tus-Resumable, X-HTTP-Method-Override, "
        "X-Request-Id",
    })
    return response


@bp.post("/files/")
@bp.post("/files")
def create():
    who = principal()
    concat = (request.headers.get("Upload-Concat") or "").strip()
    if concat == "partial":
        return _create_partial(who)
    if concat.startswith("final"):
        return _create_final(who, concat)
    if concat:
        raise BadRequest("Upload-Concat must be 'partial' or 'final;<partial upload URLs>'", field="Upload-Concat")
    deferred = request.headers.get("Upload-Defer-Length")
    if deferred is not None and deferred != "1":
        raise BadRequest("Upload-Defer-Length must be 1", field="Upload-Defer-Length")
    length = _int_header("Upload-Length")
    if length is None and deferred is None:
        raise BadRequest("Upload-Length is required (or Upload-Defer-Length: 1, and the length in a later PATCH)",
                         field="Upload-Length")
    if length is not None and deferred is not None:
        raise BadRequest("send Upload-Length or Upload-Defer-Length, not both", field="Upload-Defer-Length")
    meta = _metadata(request.headers.get("Upload-Metadata"))
    new = _new_upload(meta, length if deferred is None else 1)  # a deferred length is checked when declared
    uploads = platform().uploads
    session = uploads.create(who, new, "tus", metadata=meta, length_deferred=deferred is not None)
    response = _created(session)
    has_body = (request.content_length or 0) > 0
    if has_body:  # creation-with-upload
        if request.mimetype != OFFSET_TYPE:
            raise UnsupportedMediaType(f"a body sent with creation must be {OFFSET_TYPE}", field="Content-Type")
        result = uploads.tus_append(who, session.id, 0, request.stream, request.content_length, _checksum())
        response.headers["Upload-Offset"] = str(result["offset"])
        _length_headers(response, result["session"])
        _video_state_headers(response, result["finished"])
    else:
        response.headers["Upload-Offset"] = "0"
    return response


def _new_upload(meta: dict, size: int):
    fields = {
        "filename": meta.get("filename") or meta.get("name"),
        "size": size,
        "content_type": meta.get("filetype") or meta.get("content_type") or meta.get("type"),
        "title": meta.get("title"),
        "description": meta.get("description"),
        "tags": meta.get("tags"),
        "category": meta.get("category"),
    }
    try:
        return check_new_upload(fields, platform().settings.upload_max_size)
    except ServiceError as exc:
        if exc.field in ("filename", "content_type", "title", "description", "tags", "category"):
            exc.extra["metadata_key"] = exc.field
            exc.field = "Upload-Metadata"
        elif exc.field == "size":
            exc.field = "Upload-Length"
        raise


def _created(session) -> Response:
    g.upload_id, g.video_id = session.id, session.video_id
    response = Response(status=201)
    # On the address the client used (through nginx: nginx's), so that its PATCHes go the same way.
    response.headers["Location"] = f"{site_url(platform().settings)}/files/{session.id}"
    if session.video_id:
        response.headers["Video-Id"] = session.video_id
    response.headers["Upload-Expires"] = _expires(session.expires_at)
    return response


def _create_partial(who) -> Response:
    """concatenation: a piece of a file, uploaded beside the others; it becomes no video by itself."""
    length = _int_header("Upload-Length")
    if length is None:
        raise BadRequest("a partial upload needs its Upload-Length", field="Upload-Length")
    try:
        session = platform().uploads.concatenation.create_partial(who, length, _metadata(request.headers.get(
            "Upload-Metadata")))
    except ServiceError as exc:
        if exc.field == "size":
            exc.field = "Upload-Length"
        raise
    response = _created(session)
    response.headers["Upload-Offset"] = "0"
    response.headers["Upload-Concat"] = "partial"
    return response


def _create_final(who, header: str) -> Response:
    """concatenation: the video, made of the complete partial uploads the header lists, in order."""
    if request.headers.get("Upload-Length") is not None:
        raise BadRequest("a final upload takes its length from its partial uploads: send no Upload-Length",
                         field="Upload-Length")
    meta = _metadata(request.headers.get("Upload-Metadata"))
    new = _new_upload(meta, 1)  # its size is the partials' sum, checked when they are read
    session, finished = platform().uploads.concatenation.create_final(
        who, new, partial_ids(header), meta, site_url(platform().settings))
    response = _created(session)
    response.headers["Upload-Offset"] = str(session.size)
    response.headers["Upload-Length"] = str(session.size)
    response.headers["Upload-Concat"] = _concat_header(session)
    _video_state_headers(response, finished)
    return response


def _concat_header(session) -> str:
    return "final;" + " ".join(session.concat_of) if session.concat == "final" else "partial"


@bp.route("/files/<upload_id>", methods=["HEAD"])
def head(upload_id: str):
    g.upload_id = upload_id
    session, offset = platform().uploads.tus_offset(principal(), upload_id)
    g.video_id = session.video_id
    response = Response(status=200)
    _length_headers(response, session)
    response.headers.update({
        "Upload-Offset": str(offset),
        "Upload-Expires": _expires(session.expires_at),
        "Cache-Control": "no-store",
    })
    if session.video_id:
        response.headers["Video-Id"] = session.video_id
    if session.concat:
        response.headers["Upload-Concat"] = _concat_header(session)
    if session.metadata:
        response.headers["Upload-Metadata"] = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in session.metadata.items())
    return response


@bp.patch("/files/<upload_id>")
def patch(upload_id: str):
    g.upload_id = upload_id
    if request.mimetype != OFFSET_TYPE:
        raise UnsupportedMediaType(f"PATCH bodies must be {OFFSET_TYPE}", field="Content-Type")
    offset = _int_header("Upload-Offset")
    if offset is None:
        raise BadRequest("Upload-Offset is required", field="Upload-Offset")
    result = platform().uploads.tus_append(principal(), upload_id, offset, request.stream,
                                           request.content_length, _checksum(), _int_header("Upload-Length"))
    session = result["session"]
    g.video_id = session.video_id
    response = Response(status=204)  # tus 1.0 answers every successful PATCH with 204, the last one too
    response.headers["Upload-Offset"] = str(result["offset"])
    response.headers["Upload-Expires"] = _expires(session.expires_at)
    if session.video_id:
        response.headers["Video-Id"] = session.video_id
    _video_state_headers(response, result["finished"])
    return response


def _length_headers(response: Response, session) -> None:
    if session.length_deferred:
        response.headers["Upload-Defer-Length"] = "1"
    else:
        response.headers["Upload-Length"] = str(session.size)


def _video_state_headers(response: Response, finished: dict | None) -> None:
    """The last PATCH answers once the object is complete; the video is then being probed, and
    ``GET /videos/<id>`` tells when it is queued (or rejected, and why)."""
    if finished and "status" in finished:  # (a partial upload has no video)
        response.headers["Video-Status"] = finished["status"]
        if finished.get("stage"):
            response.headers["Video-Stage"] = finished["stage"]


@bp.delete("/files/<upload_id>")
def terminate(upload_id: str):
    g.upload_id = upload_id
    platform().uploads.terminate(principal(), upload_id)
    return Response(status=204)
