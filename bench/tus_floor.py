"""The least a Python tus server can do per request, for the benchmark's floors (bench/uploads_vs_tusd.py).

Two WSGI apps that accept what bench/tus_kit.py sends (``POST /files/``, then PATCHes at the upload's
offset) and store each upload as one file under ``$TUS_FLOOR_DIR``, with no Redis, no authentication,
no session, no log line and no checks beyond the offset: ``wsgi_app`` straight on gunicorn, and
``flask_app``, the same through a Flask route. They run under the API's own gunicorn command and
configuration (gthread, workers x threads, reelhouse/ops/gunicorn_conf.py), so the difference between
them and Reelhouse is what Flask and Reelhouse's upload path cost per request, and the difference between
them and tusd is what Python and gunicorn cost. Not a server to use: nothing here is durable or safe.
"""
from __future__ import annotations

import os
import uuid

from flask import Flask, Response, request

from reelhouse.adapters.local_files import pwrite_all
from reelhouse.services.upload_bodies import RECEIVE_BUFFERS

FOLDER = os.environ.get("TUS_FLOOR_DIR", "")


def _create() -> str:
    upload_id = uuid.uuid4().hex
    open(os.path.join(FOLDER, upload_id), "xb").close()
    return upload_id


def _append(upload_id: str, offset: int, body, length: int) -> int:
    """Append ``length`` bytes of ``body`` at ``offset``; -1 if the file is not ``offset`` long."""
    buffer = RECEIVE_BUFFERS.take()
    view = memoryview(buffer)
    descriptor = os.open(os.path.join(FOLDER, os.path.basename(upload_id)), os.O_WRONLY)
    try:
        if os.fstat(descriptor).st_size != offset:
            return -1
        while length > 0 and (count := body.readinto(view[:min(len(view), length)])):
            offset = pwrite_all(descriptor, view[:count], offset)
            length -= count
        return offset
    finally:
        os.close(descriptor)
        view.release()
        RECEIVE_BUFFERS.give_back(buffer)


def wsgi_app(environ, start_response):
    tus = ("Tus-Resumable", "1.0.0")
    if environ["REQUEST_METHOD"] == "POST":
        start_response("201 Created", [("Location", f"/files/{_create()}"), tus, ("Content-Length", "0")])
        return [b""]
    end = _append(environ["PATH_INFO"].rsplit("/", 1)[-1], int(environ.get("HTTP_UPLOAD_OFFSET", -1)),
                  environ["wsgi.input"], int(environ.get("CONTENT_LENGTH") or 0))
    if end < 0:
        start_response("409 Conflict", [tus, ("Content-Length", "0")])
    else:
        start_response("204 No Content", [("Upload-Offset", str(end)), tus])
    return [b""]


flask_app = Flask(__name__)


@flask_app.post("/files/")
def create():
    return Response(status=201, headers={"Location": f"/files/{_create()}", "Tus-Resumable": "1.0.0"})


@flask_app.patch("/files/<upload_id>")
def patch(upload_id: str):
    end = _append(upload_id, int(request.headers.get("Upload-Offset", -1)), request.stream,
                  request.content_length or 0)
    if end < 0:
        return Response(status=409, headers={"Tus-Resumable": "1.0.0"})
    return Response(status=204, headers={"Upload-Offset": str(end), "Tus-Resumable": "1.0.0"})
