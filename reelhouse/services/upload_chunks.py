"""The seed's chunk API (``/upload/init``, ``/upload/chunk``, ``/upload/complete``): a mixin of
UploadService, which provides the session, the store, the lock and ``finish``.

Chunk N is part N of the upload's multipart upload (written in place at (n - 1) x chunk_size on a
store with appends); ``complete_chunks`` checks that none is missing and finishes the upload.
"""
from __future__ import annotations

import hashlib
from typing import BinaryIO, Optional

from reelhouse.domain.accounts import Principal
from reelhouse.ports import NoSuchUpload
from reelhouse.services.errors import BadRequest, Conflict


class ChunkUploads:
    def put_chunk(self, principal: Principal, upload_id: str, chunk_number: int, body: BinaryIO,
                  content_length: Optional[int], digest: Optional[bytes]) -> dict:
        session = self.session_for(principal, upload_id)
        if session.protocol != "chunks":
            raise Conflict("this upload uses tus; send its data with PATCH /files/<id>", field="upload_id")
        if session.finished:
            raise Conflict("this upload is already complete", field="upload_id", code="upload_complete",
                           video_id=session.video_id)
        if not 1 <= chunk_number <= session.total_chunks:
            raise BadRequest(f"chunk_number must be between 1 and {session.total_chunks}", field="chunk_number")
        expected = session.expected_chunk_size(chunk_number)
        if content_length is not None and content_length != expected:
            raise BadRequest(f"chunk {chunk_number} must be {expected} bytes, got {content_length}",
                             field="chunk", expected_size=expected)
        data = body.read(expected + 1)
        if len(data) != expected:
            raise BadRequest(f"chunk {chunk_number} must be {expected} bytes, got {len(data)}",
                             field="chunk", expected_size=expected)
        if digest is not None and hashlib.sha256(data).digest() != digest:
            raise BadRequest("the chunk's sha-256 does not match its Content-Digest header",
                             field="Content-Digest", code="digest_mismatch")
        if session.storage == "appends":  # in place: completing the upload then copies nothing
            part = self.objects.upload_part_at(session.bucket, session.key, session.multipart_id, chunk_number,
                                               (chunk_number - 1) * session.chunk_size, data)
        else:
            part = self.objects.upload_part(session.bucket, session.key, session.multipart_id, chunk_number, data)
        self._renew(session)
        return {"upload_id": upload_id, "chunk_number": chunk_number, "status": "completed",
                "size": part.size, "etag": part.etag}

    def chunk_status(self, principal: Principal, upload_id: str) -> dict:
        session = self.session_for(principal, upload_id)
        try:
            parts = None if session.finished else {p.part_number: p.size for p in self._parts(session)}
        except NoSuchUpload:  # the object completed; `finish` did not get to record it
            parts = None
        if parts is None:
            parts = {n: session.expected_chunk_size(n) for n in range(1, session.total_chunks + 1)}
        if session.protocol == "chunks":
            received = sorted(n for n, size in parts.items() if size == session.expected_chunk_size(n))
            missing = [n for n in range(1, session.total_chunks + 1) if n not in parts]
            bytes_received = sum(parts[n] for n in received)
        else:
            received, missing = [], []
            try:
                bytes_received = session.size if session.finished else self._stored_offset(session)
            except NoSuchUpload:
                bytes_received = session.size
        return {
            "upload_id": session.id, "video_id": session.video_id, "protocol": session.protocol,
            "filename": session.filename, "size": session.size, "chunk_size": session.chunk_size,
            "total_chunks": session.total_chunks, "received_chunks": received, "missing_chunks": missing,
            "bytes_received": bytes_received, "expires_at": session.expires_at, "complete": session.finished,
        }

    def complete_chunks(self, principal: Principal, upload_id: str) -> dict:
        session = self.session_for(principal, upload_id)
        if session.protocol != "chunks":
            raise Conflict("this upload uses tus; it completes when its last byte arrives", field="upload_id")
        if session.finished:  # a retry after a lost answer: report, never queue twice
            return self._video_answer(session.video_id)
        with self._lock(session.id):
            try:
                parts = {p.part_number: p for p in self._parts(session)}
            except NoSuchUpload:
                parts = None  # completed earlier by a request that did not live to answer
            if parts is not None:
                missing = [n for n in range(1, session.total_chunks + 1) if n not in parts]
                if missing:
                    raise Conflict(f"{len(missing)} chunk(s) missing", field="chunk_number",
                                   code="missing_chunks", missing_chunks=missing)
            return self.finish(session)
