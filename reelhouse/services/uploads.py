"""Resumable upload use cases, shared by the seed's chunk API and tus 1.0.

Both protocols write into one multipart upload of the object store and end in
``finish``: complete the object and move the video to ``processing/probing``,
then answer; ``UploadProber`` probes it and queues its transcode afterwards.

tus bytes go to the store as appends where it has them (the local store: one
file, renamed into place on completion, so completing copies nothing), and are
cut into multipart parts where it has not (S3, ``tus_parts``).
"""
from __future__ import annotations

import logging
import time
from typing import BinaryIO, Iterator, Optional

from reelhouse.domain.accounts import Principal, may_modify_video
from reelhouse.domain.videos import Stage, Video, VideoStatus, new_video_id
from reelhouse.domain.uploads import UploadSession, new_upload_id
from reelhouse.ports import (
    MIN_PART_SIZE, Bus, Catalog, Coordination, InvalidWriteOffset, NoSuchUpload, ObjectStore,
    UploadSessionStore,
)
from reelhouse.services.errors import (
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized,
)
from reelhouse.services.tus_concat import TusConcatenation
from reelhouse.services.upload_chunks import ChunkUploads
from reelhouse.services.tus_parts import TusPartWriter, TusProgress, tus_progress
from reelhouse.services.upload_probe import UploadProber
from reelhouse.services.upload_requests import NewUpload, check_chunk_size
from reelhouse.services.upload_bodies import body_blocks, verified_body
from reelhouse.services.upload_lock import upload_lock, wait_for_writer
from reelhouse.settings import Settings

log = logging.getLogger("reelhouse.uploads")

MAX_CHUNK = 100 * 1024 * 1024
RENEW_WITHIN = 0.95  # renew a session whose remaining TTL fell below this share of the whole


class UploadService(ChunkUploads):
    def __init__(self, settings: Settings, objects: ObjectStore, catalog: Catalog, bus: Bus,
                 sessions: UploadSessionStore, coordination: Coordination, prober: Optional[UploadProber] = None):
        self.settings, self.objects, self.catalog, self.bus = settings, objects, catalog, bus
        self.sessions, self.coordination = sessions, coordination
        self.prober = prober or UploadProber(settings, objects, catalog, bus, sessions, coordination)
        self.concatenation = TusConcatenation(self)

    def _renew(self, session: UploadSession) -> None:
        """Activity renews the session's TTL and the sweeper's deadline; at most every 1/20 of the TTL
        (3 min of 1 h), which saves a Redis transaction on nearly every PATCH and chunk."""
        if session.expires_at - time.time() < self.settings.upload_ttl_s * RENEW_WITHIN:
            self.sessions.save(session)

    def _lock(self, upload_id: str):
        return upload_lock(self.coordination, upload_id, self.settings.upload_lock_ttl_ms)

    # ------------------------------------------------------------------ creation
    def create(self, principal: Principal, new: NewUpload, protocol: str,
               chunk_size: Optional[int] = None, metadata: Optional[dict] = None,
               length_deferred: bool = False, upload_id: Optional[str] = None) -> UploadSession:
        """``length_deferred`` (tus only): ``new.size`` is not known yet; a later PATCH declares it.
        ``upload_id``: chosen by the caller (a tus final upload's is derived from its partials)."""
        if not principal.is_creator:
            raise Unauthorized("uploading needs a creator's API token (Authorization: Bearer …)",
                               field="Authorization", code="missing_token")
        video_id = new_video_id()
        bucket = self.settings.bucket_uploads
        key = f"sources/{principal.id}/{video_id}/source{new.extension}"
        session = UploadSession(
            id=upload_id or new_upload_id(), protocol=protocol, video_id=video_id, creator_id=principal.id,
            bucket=bucket, key=key, multipart_id="", size=new.size,
            chunk_size=check_chunk_size(chunk_size, self.settings.upload_chunk_size, MIN_PART_SIZE, MAX_CHUNK)
            if protocol == "chunks" else 0,
            part_size=self.settings.upload_part_size if protocol == "tus" else 0,
            storage="appends" if self.objects.supports_append else "parts",
            length_deferred=length_deferred and protocol == "tus",
            filename=new.filename, content_type=new.content_type, metadata=metadata or {},
        )
        session.multipart_id = self.objects.create_multipart(bucket, key, new.content_type)
        if session.length_deferred:
            session.size = self.settings.upload_max_size
        self.catalog.create_video(Video(
            id=video_id, creator_id=principal.id, title=new.title, filename=new.filename,
            size=0 if session.length_deferred else new.size,
            content_type=new.content_type, description=new.description, tags=new.tags, category=new.category,
            source_bucket=bucket, source_key=key,
        ))
        self.sessions.save(session)
        log.info("upload %s created: video %s, %s, %d bytes, protocol %s",
                 session.id, video_id, new.filename, new.size, protocol)
        return session

    def session_for(self, principal: Principal, upload_id: str) -> UploadSession:
        session = self.sessions.get(upload_id)
        if session is None:
            raise NotFound("no such upload (it may have completed, expired or been cancelled)",
                           field="upload_id", code="unknown_upload")
        if not principal.is_creator:
            raise Unauthorized("this upload needs its creator's API token", field="Authorization",
                               code="missing_token")
        if not may_modify_video(principal, session.creator_id):
            raise Forbidden("this upload belongs to another creator", field="upload_id")
        return session

    def _video_answer(self, video_id: str) -> dict:
        video = self.catalog.get_video(video_id)
        if video is None:
            raise NotFound("the video of this upload no longer exists", field="upload_id")
        answer = {"video_id": video.id, "status": video.status.value,
                  "stage": video.stage.value if video.stage else None}
        if video.reason:
            answer["reason"] = video.reason
        return answer

    # ------------------------------------------------------------------ tus
    def tus_offset(self, principal: Principal, upload_id: str) -> tuple[UploadSession, int]:
        session = self.session_for(principal, upload_id)
        if session.finished:
            return session, session.size
        # A PATCH may still hold the upload: its client cut the request and asks at once. Waiting for
        # it to let go makes the answer count every byte that request keeps, so a resume never gets 409.
        lease = wait_for_writer(self.coordination, session.id, self.settings.upload_lock_ttl_ms,
                                self.settings.upload_head_wait_ms)
        try:
            try:
                offset = self._stored_offset(session)
            except NoSuchUpload:
                offset = session.size  # the object completed, but the process died in `finish`
            if offset == session.size and lease is not None and not session.length_deferred:
                # Every byte is in but the upload never finished (its process died first): a tus client
                # that sees the full offset never comes back, so finish it now.
                self.finish(session)
        finally:
            if lease is not None:
                lease.release()
        return session, offset

    def _stored_offset(self, session: UploadSession) -> int:
        """Bytes of a tus upload in the store; raises NoSuchUpload once its object is complete."""
        if session.storage == "appends":
            return self.objects.appended_size(session.bucket, session.key, session.multipart_id)
        return tus_progress(self.objects, session).offset

    def tus_append(self, principal: Principal, upload_id: str, offset: int, body: BinaryIO,
                   content_length: Optional[int], checksum: Optional[tuple[str, bytes]] = None,
                   upload_length: Optional[int] = None) -> dict:
        """``upload_length``: the PATCH's Upload-Length, which declares a deferred length."""
        session = self.session_for(principal, upload_id)
        if session.protocol != "tus":
            raise Conflict("this upload uses the chunk API", field="upload_id")
        if session.concat == "final":
            raise Forbidden("a final upload takes no PATCH: its bytes are its partial uploads'", field="Upload-Concat")
        if session.finished:
            if offset == session.size and not content_length:
                return {"offset": session.size, "session": session, "finished": self._video_answer(session.video_id)}
            raise Conflict("this upload is already complete", field="Upload-Offset", code="upload_complete",
                           offset=session.size)
        with self._lock(session.id) as lock:
            try:
                # parts: the listing that gives the offset also tells the writer where it resumes
                progress = None if session.storage == "appends" else tus_progress(self.objects, session)
                stored = self._stored_offset(session) if progress is None else progress.offset
            except NoSuchUpload:  # completed by a request that died in `finish`: finish it now
                answer = self.finish(session)
                if offset == session.size and not content_length:
                    return {"offset": session.size, "session": session, "finished": answer}
                raise Conflict("this upload is already complete", field="Upload-Offset", code="upload_complete",
                               offset=session.size) from None
            if offset != stored:
                raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {stored}",
                               field="Upload-Offset", code="offset_mismatch", offset=stored)
            if upload_length is not None:
                self._declare_length(session, upload_length, stored)
            remaining = session.size - offset
            if content_length is not None and content_length > remaining:
                raise PayloadTooLarge(f"the request carries {content_length} bytes but only {remaining} remain",
                                      field="Content-Length")
            if checksum is not None:
                body = verified_body(body, content_length, remaining, checksum)
            blocks = body_blocks(body, remaining, session.id, lock, content_length)
            if session.storage == "appends":
                try:
                    new_offset = self.objects.append(session.bucket, session.key, session.multipart_id, offset, blocks)
                except InvalidWriteOffset as moved:  # only if a writer got past the upload lock
                    raise Conflict(f"Upload-Offset {offset} does not match the upload's offset {moved.size}",
                                   field="Upload-Offset", code="offset_mismatch", offset=moved.size) from None
            else:
                new_offset = self._write_parts(session, offset, blocks, progress)
            self._renew(session)
            result = {"offset": new_offset, "session": session, "finished": None}
            if new_offset == session.size and not session.length_deferred:
                result["finished"] = self.finish(session)
            return result

    def _declare_length(self, session: UploadSession, length: int, stored: int) -> None:
        if not session.length_deferred:
            if length != session.size:
                raise BadRequest(f"Upload-Length {length} differs from the upload's length {session.size}",
                                 field="Upload-Length")
            return
        if not stored <= length <= self.settings.upload_max_size:
            raise BadRequest(f"Upload-Length must be between the {stored} bytes received and the limit of "
                             f"{self.settings.upload_max_size}", field="Upload-Length")
        session.size, session.length_deferred = length, False
        self.catalog.update_video(session.video_id, size=length)
        self.sessions.save(session)
        log.info("upload %s: length declared, %d bytes", session.id, length)

    def _write_parts(self, session: UploadSession, offset: int, blocks: Iterator[bytes],
                     progress: Optional[TusProgress] = None) -> int:
        writer = TusPartWriter(self.objects, session, progress or tus_progress(self.objects, session))
        received = 0
        try:
            for block in blocks:
                writer.write(block)
                received += len(block)
        except BaseException:
            writer.abandon()
            raise
        return writer.close(final=offset + received == session.size and not session.length_deferred)

    def terminate(self, principal: Principal, upload_id: str) -> None:
        session = self.session_for(principal, upload_id)
        if session.finished:
            raise Conflict("this upload is complete; its video can no longer be cancelled as an upload",
                           field="upload_id", code="upload_complete", video_id=session.video_id)
        with self._lock(session.id):
            self._discard(session.id, session.bucket, session.key, session.multipart_id)
            self.catalog.delete_video(session.video_id)
            self.sessions.forget(session.id, session.video_id)
        log.info("upload %s terminated by its creator: video %s deleted", session.id, session.video_id)

    # ------------------------------------------------------------------ shared
    def _every_byte_in(self, session: UploadSession) -> bool:
        """Every byte of the upload is stored in its (not yet completed) multipart upload."""
        if session.length_deferred:
            return False
        try:
            if session.protocol == "tus":
                return self._stored_offset(session) == session.size
            parts = {p.part_number: p.size for p in self._parts(session)}
        except NoSuchUpload:
            return False
        return all(parts.get(n) == session.expected_chunk_size(n) for n in range(1, session.total_chunks + 1))

    def _parts(self, session: UploadSession):
        return self.objects.list_parts(session.bucket, session.key, session.multipart_id)

    def _discard(self, upload_id: str, bucket: str, key: str, multipart_id: str) -> None:
        self.objects.abort_multipart(bucket, key, multipart_id)
        for tail in list(self.objects.list(bucket, f"tus-tails/{upload_id}/")):
            self.objects.delete(bucket, tail.key)

    def bytes_received(self, video_id: str) -> Optional[int]:
        upload_id = self.sessions.upload_id_for_video(video_id)
        session = self.sessions.get(upload_id) if upload_id else None
        if session is None:
            return None
        if session.finished:
            return session.size
        try:
            if session.protocol == "tus":
                return self._stored_offset(session)
            return sum(p.size for p in self._parts(session))
        except NoSuchUpload:
            return session.size

    def finish(self, session: UploadSession) -> dict:
        """Every byte is in: complete the object and hand the video to the prober; answers at once
        (``processing/probing``). The prober marks the session finished once the video is queued or
        rejected, so until then a HEAD, a retried completion or the sweeper runs this again.

        Safe to run again after a crash at any step: each step checks where the previous run got to.
        """
        if session.concat == "partial":  # no video: the piece is kept for its final upload
            self._complete_object(session)
            self.sessions.mark_finished(session)
            return {"upload_id": session.id, "partial": True}
        video = self.catalog.get_video(session.video_id)
        if video is None:
            raise NotFound("the video of this upload no longer exists", field="upload_id")
        if video.status == VideoStatus.UPLOADING:
            self.catalog.compare_and_set_status(video.id, VideoStatus.UPLOADING, None,
                                                VideoStatus.PROCESSING, Stage.PROBING, progress=0.0)
            video = self.catalog.get_video(video.id)
        if video.status == VideoStatus.PROCESSING and video.stage == Stage.PROBING:
            self._complete_object(session)
            self.prober.submit(video.id)
        else:
            if video.status == VideoStatus.PROCESSING and video.stage == Stage.QUEUED:
                self.prober.queue(video)  # a crash may have come between the status change and the job
            self.sessions.mark_finished(session)
        return self._video_answer(video.id)

    def _complete_object(self, session: UploadSession) -> None:
        started = time.monotonic()
        try:
            if session.storage == "appends":
                info = self.objects.complete_append(session.bucket, session.key, session.multipart_id)
                parts = 1
            else:
                parts = self._parts(session)
                info = self.objects.complete_multipart(session.bucket, session.key, session.multipart_id, parts)
                parts = len(parts)
        except NoSuchUpload:
            info = self.objects.head(session.bucket, session.key)  # completed by an earlier attempt
            if info.size != session.size:
                raise Conflict("the stored object does not match the upload's size", field="upload_id")
            return
        if info.size != session.size:
            raise Conflict(f"the stored object holds {info.size} bytes, not the upload's {session.size}",
                           field="upload_id")
        for tail in list(self.objects.list(session.bucket, session.tails_prefix)):
            self.objects.delete(session.bucket, tail.key)
        log.info("upload %s: object %s/%s complete, %d bytes in %d part(s) (%.1f ms)", session.id, session.bucket,
                 session.key, info.size, parts, (time.monotonic() - started) * 1000)

    # ------------------------------------------------------------------ maintenance
    def sweep_expired(self, now: Optional[float] = None) -> list[str]:
        """Deal with uploads whose session expired.

        Still uploading: abort the multipart upload, the video ends ``failed``.
        All bytes in but never finished (the API died before or during ``finish``, or a chunk
        client never called complete, and the client never came back): finish it now, so the
        upload is neither lost nor stuck.
        """
        swept = []
        for upload_id, last in self.sessions.expired(now):
            video = self.catalog.get_video(last.video_id) if last else None
            finishing = video and video.status == VideoStatus.PROCESSING and video.stage in (Stage.PROBING,
                                                                                            Stage.QUEUED)
            if finishing or (video and video.status == VideoStatus.UPLOADING and self._every_byte_in(last)):
                self.finish(last)
                log.info("upload %s expired after its last byte: finished, video %s", upload_id, video.id)
            elif last:
                self._discard(upload_id, last.bucket, last.key, last.multipart_id)
                if video and video.status == VideoStatus.UPLOADING:
                    self.catalog.compare_and_set_status(
                        video.id, VideoStatus.UPLOADING, None, VideoStatus.FAILED, None,
                        reason=f"upload abandoned: no data for {self.settings.upload_ttl_s} s",
                    )
                log.info("upload %s expired: multipart aborted, video %s failed", upload_id, last.video_id)
            self.sessions.forget(upload_id, last.video_id if last else "")
            swept.append(upload_id)
        return swept

