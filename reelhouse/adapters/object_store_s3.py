"""The production object store: any S3 API (AWS S3, MinIO, Ceph, moto_server).

Errors come back as the ``reelhouse.ports`` exceptions, etags unquoted, and
the idempotent operations (delete, abort) stay quiet about what is already
gone, so callers see the same behaviour as with the local store.

``list()`` cannot tell content types (ListObjectsV2 does not return them):
its ObjectInfos carry the default; ``head()`` has the real one.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, BinaryIO, Callable, Iterator, Optional

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from reelhouse.adapters.object_store_rules import (
    DEFAULT_CONTENT_TYPE,
    check_byte_range,
    check_part_number,
    check_part_order,
    no_such_bucket,
    plain_etag,
)
from reelhouse.ports import (
    Body,
    EntityTooSmall,
    InvalidPart,
    InvalidRange,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    ObjectStore,
    ObjectStoreError,
    PartInfo,
)

_ERROR_BY_CODE: dict[str, type[ObjectStoreError]] = {
    "NoSuchKey": NoSuchKey,
    "404": NoSuchKey,  # HEAD responses have no body, so no code but the status
    "NotFound": NoSuchKey,
    "NoSuchUpload": NoSuchUpload,
    "InvalidPart": InvalidPart,
    "InvalidPartOrder": InvalidPart,
    "EntityTooSmall": EntityTooSmall,
    "InvalidRange": InvalidRange,
}
_GONE_ALREADY = {"NoSuchKey", "NoSuchUpload", "NoSuchBucket", "404", "NotFound"}


class S3ObjectStore(ObjectStore):
    engine = "s3"

    def __init__(
        self,
        endpoint_url: Optional[str],
        region: str,
        access_key_id: Optional[str],
        secret_access_key: Optional[str],
        *,
        page_size: int = 1000,
    ):
        """``endpoint_url`` None means AWS itself; credentials None means boto3's usual chain.
        ``page_size`` is the most entries asked for per list request (S3's own maximum is 1000)."""
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key}
        self._page_size = page_size
        self._config = Config(
            region_name=region,
            signature_version="s3v4",
            # Path-style addressing: MinIO and moto do not resolve <bucket>.<host> names.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=32,  # parts of many uploads go up at once
            connect_timeout=5,
            read_timeout=60,
        )
        self._client_lock = threading.Lock()
        self._client_pid: Optional[int] = None
        self._client_instance: Any = None

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.endpoint_url or 'aws'!r}, region={self.region!r})"

    @property
    def _client(self):
        # A connection pool must not cross a fork (gunicorn workers, multiprocessing): one client per process.
        if self._client_pid != os.getpid():
            with self._client_lock:
                if self._client_pid != os.getpid():
                    session = boto3.session.Session(**self._credentials)
                    self._client_instance = session.client("s3", endpoint_url=self.endpoint_url, config=self._config)
                    self._client_pid = os.getpid()
        return self._client_instance

    # ------------------------------------------------------------------ objects
    def ensure_bucket(self, bucket: str) -> None:
        try:
            self._client.head_bucket(Bucket=bucket)
            return
        except ClientError as error:
            if _code(error) not in ("404", "NoSuchBucket", "NotFound"):
                raise _translated(error, f"checking bucket {bucket!r}") from error
        create: dict = {"Bucket": bucket}
        if self.region != "us-east-1":  # the one region that refuses an explicit location constraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**create)
        except ClientError as error:
            if _code(error) != "BucketAlreadyOwnedByYou":  # another process got there first
                raise _translated(error, f"creating bucket {bucket!r}") from error

    def put(self, bucket: str, key: str, body: Body, content_type: str = DEFAULT_CONTENT_TYPE) -> ObjectInfo:
        payload, size = _sized(body)
        response = self._call(self._client.put_object, f"put s3://{bucket}/{key}", _no_bucket_error(bucket),
                              Bucket=bucket, Key=key, Body=payload, ContentType=content_type)
        # PutObject does not answer with the time it stored; ours is within a round trip of it.
        return ObjectInfo(bucket, key, size, plain_etag(response["ETag"]), content_type, time.time())

    def get(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> bytes:
        with self.open(bucket, key, byte_range) as stream:
            return stream.read()

    def open(self, bucket: str, key: str, byte_range: Optional[tuple[int, int]] = None) -> BinaryIO:
        request = {"Bucket": bucket, "Key": key}
        if byte_range is not None:
            check_byte_range(byte_range)
            request["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        response = self._call(self._client.get_object, f"get s3://{bucket}/{key}", NoSuchKey, **request)
        return response["Body"]

    def head(self, bucket: str, key: str) -> ObjectInfo:
        response = self._call(self._client.head_object, f"head s3://{bucket}/{key}", NoSuchKey,
                              Bucket=bucket, Key=key)
        return ObjectInfo(bucket, key, response["ContentLength"], plain_etag(response["ETag"]),
                          response.get("ContentType", DEFAULT_CONTENT_TYPE), response["LastModified"].timestamp())

    def delete(self, bucket: str, key: str) -> None:
        self._call_idempotent(self._client.delete_object, f"delete s3://{bucket}/{key}", Bucket=bucket, Key=key)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        pages = self._pages("list_objects_v2", f"list s3://{bucket}/{prefix}*", _no_bucket_error(bucket),
                            Bucket=bucket, Prefix=prefix)
        for page in pages:
            for entry in page.get("Contents", []):
                yield ObjectInfo(bucket, entry["Key"], entry["Size"], plain_etag(entry["ETag"]),
                                 DEFAULT_CONTENT_TYPE, entry["LastModified"].timestamp())

    def location_for_reading(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        self.head(bucket, key)  # a URL to nothing would fail later and less clearly, inside ffmpeg
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s
        )

    # ------------------------------------------------------------------ multipart
    def create_multipart(self, bucket: str, key: str, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        response = self._call(self._client.create_multipart_upload, f"start upload to s3://{bucket}/{key}",
                              _no_bucket_error(bucket), Bucket=bucket, Key=key, ContentType=content_type)
        return response["UploadId"]

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body) -> PartInfo:
        check_part_number(part_number)
        payload, size = _sized(body)
        response = self._call(self._client.upload_part, f"upload part {part_number} of {upload_id}", NoSuchUpload,
                              Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=part_number, Body=payload)
        return PartInfo(part_number=part_number, size=size, etag=plain_etag(response["ETag"]))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = 0
        while True:  # ListParts pages by PartNumberMarker, not by the paginator's usual token
            response = self._call(self._client.list_parts, f"list parts of {upload_id}", NoSuchUpload,
                                  Bucket=bucket, Key=key, UploadId=upload_id,
                                  MaxParts=self._page_size, PartNumberMarker=marker)
            parts += [PartInfo(p["PartNumber"], p["Size"], plain_etag(p["ETag"])) for p in response.get("Parts", [])]
            next_marker = int(response.get("NextPartNumberMarker") or 0)
            if not response.get("IsTruncated") or next_marker <= marker:
                break
            marker = next_marker
        return sorted(parts, key=lambda part: part.part_number)

    def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[PartInfo]) -> ObjectInfo:
        check_part_order(parts)  # S3 would answer an empty list with MalformedXML
        listed = [{"PartNumber": part.part_number, "ETag": f'"{plain_etag(part.etag)}"'} for part in parts]
        self._call(self._client.complete_multipart_upload, f"complete upload {upload_id}", NoSuchUpload,
                   Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed})
        return self.head(bucket, key)  # the completion answer has no size

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._call_idempotent(self._client.abort_multipart_upload, f"abort upload {upload_id}",
                              Bucket=bucket, Key=key, UploadId=upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, float]]:
        pages = self._pages("list_multipart_uploads", f"list uploads in s3://{bucket}/{prefix}*",
                            _no_bucket_error(bucket), Bucket=bucket, Prefix=prefix)
        uploads = [(entry["Key"], entry["UploadId"], entry["Initiated"].timestamp())
                   for page in pages for entry in page.get("Uploads", [])]
        return sorted(uploads, key=lambda upload: (upload[0].encode("utf-8"), upload[2]))

    # ------------------------------------------------------------------ calls
    def _call(self, operation: Callable[..., dict], what: str,
              if_no_bucket: Callable[[str], ObjectStoreError], **request) -> dict:
        try:
            return operation(**request)
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                raise if_no_bucket(f"{what}: the bucket does not exist") from error
            raise _translated(error, what) from error
        except BotoCoreError as error:
            raise self._unreachable(error, what) from error

    def _call_idempotent(self, operation: Callable[..., dict], what: str, **request) -> None:
        try:
            operation(**request)
        except ClientError as error:
            if _code(error) not in _GONE_ALREADY:
                raise _translated(error, what) from error
        except BotoCoreError as error:
            raise self._unreachable(error, what) from error

    def _pages(self, operation: str, what: str, if_no_bucket: Callable[[str], ObjectStoreError],
               **request) -> Iterator[dict]:
        pages = self._client.get_paginator(operation).paginate(
            **request, PaginationConfig={"PageSize": self._page_size}
        )
        try:
            yield from pages
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                raise if_no_bucket(f"{what}: the bucket does not exist") from error
            raise _translated(error, what) from error
        except BotoCoreError as error:
            raise self._unreachable(error, what) from error

    def _unreachable(self, error: BotoCoreError, what: str) -> ObjectStoreError:
        """Connection and credential failures, which carry no S3 error code."""
        failure = ObjectStoreError(f"{what}: {error} (endpoint {self.endpoint_url or 'AWS'}; "
                                   "check REELHOUSE_S3_ENDPOINT_URL and the S3 credentials)")
        failure.code = "ServiceUnavailable"
        return failure


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translated(error: ClientError, what: str) -> ObjectStoreError:
    code = _code(error)
    message = f"{what}: {error.response.get('Error', {}).get('Message') or code}"
    kind = _ERROR_BY_CODE.get(code)
    if kind is not None:
        return kind(message)
    translated = ObjectStoreError(message)
    translated.code = code or "InternalError"
    return translated


def _no_bucket_error(bucket: str) -> Callable[[str], ObjectStoreError]:
    return lambda _message: no_such_bucket(bucket)


def _sized(body: Body) -> tuple[Any, int]:
    """The body as boto3 wants it, and its size in bytes.

    Seekable files go as they are (boto3 rewinds them to retry); other streams
    are read whole, as S3 needs the length before the first byte.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        return data, len(data)
    if not hasattr(body, "read"):
        raise TypeError(f"an object body must be bytes or a binary file object, not {type(body).__name__}")
    if getattr(body, "seekable", lambda: False)():
        start = body.tell()
        end = body.seek(0, os.SEEK_END)
        body.seek(start)
        return body, end - start
    data = body.read()
    return data, len(data)
