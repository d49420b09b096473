"""The seed's chunk API: init → chunk × N → complete, resumable via GET /upload/<id>."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from reelhouse.services.errors import BadRequest, UnsupportedMediaType
from reelhouse.services.upload_requests import check_new_upload, parse_content_digest
from serving_api.auth import platform, principal

bp = Blueprint("uploads", __name__)


def _json_body() -> dict:
    if not request.is_json:
        raise UnsupportedMediaType("send a JSON body (Content-Type: application/json)", field="Content-Type")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    return data


@bp.post("/upload/init")
def init():
    data = _json_body()
    who = principal()
    new = check_new_upload(data, platform().settings.upload_max_size)
    session = platform().uploads.create(who, new, "chunks", chunk_size=data.get("chunk_size"))
    g.upload_id, g.video_id = session.id, session.video_id
    return jsonify(upload_id=session.id, video_id=session.video_id, chunk_size=session.chunk_size,
                   total_chunks=session.total_chunks, expires_at=session.expires_at), 201


def _chunk_number(raw) -> int:
    if raw is None or not str(raw).isdigit():
        raise BadRequest("chunk_number must be a whole number from 1", field="chunk_number")
    return int(raw)


@bp.post("/upload/chunk")
def chunk():
    who = principal()
    if request.mimetype == "multipart/form-data":
        upload_id = request.form.get("upload_id")
        number = request.form.get("chunk_number")
        part = request.files.get("chunk") or request.files.get("file")
        if part is None:
            raise BadRequest("the form needs a file field named 'chunk'", field="chunk")
        body, length = part.stream, None
    else:
        upload_id = request.args.get("upload_id") or request.headers.get("Upload-Id")
        number = request.args.get("chunk_number") or request.headers.get("Chunk-Number")
        body, length = request.stream, request.content_length
    if not upload_id:
        raise BadRequest("upload_id is required", field="upload_id")
    g.upload_id = upload_id
    result = platform().uploads.put_chunk(
        who, upload_id, _chunk_number(number), body, length,
        parse_content_digest(request.headers.get("Content-Digest")),
    )
    return jsonify(result)


@bp.get("/upload/<upload_id>")
def status(upload_id: str):
    g.upload_id = upload_id
    return jsonify(platform().uploads.chunk_status(principal(), upload_id))


@bp.post("/upload/complete")
def complete():
    data = _json_body()
    upload_id = data.get("upload_id")
    if not isinstance(upload_id, str) or not upload_id:
        raise BadRequest("upload_id is required", field="upload_id")
    g.upload_id = upload_id
    result = platform().uploads.complete_chunks(principal(), upload_id)
    g.video_id = result["video_id"]
    # 202: the object is complete and the video is being probed (it ends queued, or rejected with its
    # reason, on GET /videos/<id>); 200: a repeated completion, answered with where the video got to.
    return jsonify(result), (202 if result["status"] == "processing" and result["stage"] == "probing" else 200)
