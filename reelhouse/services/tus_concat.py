"""tus concatenation: a client uploads pieces of one file in parallel, as *partial* uploads, then
creates the *final* upload from them (tus-js-client's ``parallelUploads``, Uppy).

A partial upload is an upload without a video: its bytes go to ``partials/<creator>/<upload id>``
in the uploads bucket, and completing it only completes that object. Creating the final upload
checks that every partial is complete and the caller's, creates the video, writes the partials'
bytes into the video's source in order (one copy, the same path a PATCH takes: appends on the local
store, parts on S3), completes it, and deletes the partial objects. The answer then comes as for any
completed upload: the video is ``processing/probing``.

Unfinished partials cannot be concatenated (no ``concatenation-unfinished``): tus-js-client and Uppy
create the final upload only once every partial is done.

A final upload's id is derived from its creator and its partials, so a client that retries the
creation after an API crash in the middle of the join gets the same upload and video back: the join
resumes where the store says it stopped, and no second video is made.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Iterator
from urllib.parse import urlsplit

from reelhouse.domain.accounts import Principal, may_modify_video
from reelhouse.domain.uploads import UploadSession, new_upload_id
from reelhouse.ports import NoSuchUpload
from reelhouse.services.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from reelhouse.services.upload_requests import NewUpload, check_size

log = logging.getLogger("reelhouse.uploads")

COPY_BLOCK = 8 * 1024 * 1024


def partial_ids(header: str) -> list[str]:
    """The upload ids in ``Upload-Concat: final;<url> <url> ...`` (URLs or paths ending in the id)."""
    urls = header.split(";", 1)[1].split() if ";" in header else []
    if not urls:
        raise BadRequest("Upload-Concat: final; needs the partial uploads' URLs, separated by spaces",
                         field="Upload-Concat")
    ids = [urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] for url in urls]
    if any(not upload_id for upload_id in ids) or len(set(ids)) != len(ids):
        raise BadRequest("Upload-Concat lists an empty or repeated partial upload", field="Upload-Concat")
    return ids


class TusConcatenation:
    def __init__(self, uploads):
        self.uploads = uploads  # UploadService: its store, sessions, lock and finish

    def create_partial(self, principal: Principal, size: int, metadata: dict) -> UploadSession:
        if not principal.is_creator:
            raise Unauthorized("uploading needs a creator's API token (Authorization: Bearer …)",
                               field="Authorization", code="missing_token")
        uploads = self.uploads
        size = check_size(size, uploads.settings.upload_max_size)
        upload_id = new_upload_id()
        session = UploadSession(
            id=upload_id, protocol="tus", video_id="", creator_id=principal.id,
            bucket=uploads.settings.bucket_uploads, key=f"partials/{principal.id}/{upload_id}",
            multipart_id="", size=size, part_size=uploads.settings.upload_part_size,
            storage="appends" if uploads.objects.supports_append else "parts", concat="partial",
            metadata=metadata,
        )
        session.multipart_id = uploads.objects.create_multipart(session.bucket, session.key)
        uploads.sessions.save(session)
        log.info("upload %s created: a partial upload of %d bytes", upload_id, size)
        return session

    def create_final(self, principal: Principal, new: NewUpload, ids: list[str], metadata: dict,
                     site_url: str) -> tuple[UploadSession, dict]:
        uploads = self.uploads
        if not principal.is_creator:
            raise Unauthorized("uploading needs a creator's API token (Authorization: Bearer …)",
                               field="Authorization", code="missing_token")
        final_id = hashlib.sha256(f"{principal.id}:{','.join(ids)}".encode()).hexdigest()[:32]
        session = uploads.sessions.get(final_id)
        if session is not None and session.finished:  # a retry after a lost answer
            return session, uploads._video_answer(session.video_id)
        partials = [self._complete_partial(principal, upload_id) for upload_id in ids]
        size = sum(partial.size for partial in partials)
        if size > uploads.settings.upload_max_size:
            raise PayloadTooLarge(f"the partial uploads hold {size} bytes, over the limit of "
                                  f"{uploads.settings.upload_max_size}", field="Upload-Concat")
        if session is None:
            new.size = size
            session = uploads.create(principal, new, "tus", metadata=metadata, upload_id=final_id)
            session.concat, session.concat_of = "final", [f"{site_url}/files/{upload_id}" for upload_id in ids]
            uploads.sessions.save(session)
        with uploads._lock(session.id):
            try:
                done = uploads._stored_offset(session)
            except NoSuchUpload:
                done = session.size  # joined and completed by the attempt that crashed after it
            if done < session.size:  # resume the join where the store says it stopped
                blocks = self._bytes_of(partials, skip=done)
                if session.storage == "appends":
                    uploads.objects.append(session.bucket, session.key, session.multipart_id, done, blocks)
                else:
                    uploads._write_parts(session, done, blocks)
            answer = uploads.finish(session)
        for partial in partials:
            uploads.objects.delete(partial.bucket, partial.key)
        log.info("upload %s: final upload of %d partial uploads, %d bytes, video %s", session.id, len(partials),
                 size, session.video_id)
        return session, answer

    def _complete_partial(self, principal: Principal, upload_id: str) -> UploadSession:
        partial = self.uploads.sessions.get(upload_id)
        if partial is None or partial.concat != "partial":
            raise BadRequest(f"{upload_id} is not a partial upload (Upload-Concat: partial), or it expired",
                             field="Upload-Concat", upload_id=upload_id)
        if not may_modify_video(principal, partial.creator_id):
            raise Forbidden(f"partial upload {upload_id} belongs to another creator", field="Upload-Concat")
        if not partial.finished:
            raise BadRequest(f"partial upload {upload_id} is not complete; concatenate complete partial "
                             "uploads only", field="Upload-Concat", upload_id=upload_id)
        return partial

    def _bytes_of(self, partials: list[UploadSession], skip: int = 0) -> Iterator[bytes]:
        """The partials' bytes in order, from byte ``skip`` of the whole."""
        for partial in partials:
            if skip >= partial.size:
                skip -= partial.size
                continue
            byte_range = (skip, partial.size - 1) if skip else None
            skip = 0
            with self.uploads.objects.open(partial.bucket, partial.key, byte_range) as stream:
                while block := stream.read(COPY_BLOCK):
                    yield block
