"""Checking what a creator sends: when an upload starts (both protocols), and a chunk's digest header."""
from __future__ import annotations

import base64
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Optional

from reelhouse.services.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_TAGS = 30
MAX_TAG = 40
ACCEPTED_TYPES = re.compile(r"^(video/[A-Za-z0-9.+\-]+|application/octet-stream|application/mp4|application/x-matroska)$")
CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 &_\-]{0,39}$")


@dataclass
class NewUpload:
    filename: str
    size: int
    content_type: str
    title: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    category: str = ""

    @property
    def extension(self) -> str:
        ext = os.path.splitext(self.filename)[1].lower()
        return ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""


def check_filename(name: Any) -> str:
    """A bare file name: no folders, no path tricks, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("filename is required", field="filename")
    name = unicodedata.normalize("NFC", name.strip())
    if len(name.encode()) > 255:
        raise BadRequest("filename is longer than 255 bytes", field="filename")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".."):
        raise BadRequest("filename must be a bare file name, without folders or '..'", field="filename")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise BadRequest("filename contains control characters", field="filename")
    if re.match(r"^[A-Za-z]:", name):
        raise BadRequest("filename must not name a drive", field="filename")
    return name


def check_size(size: Any, max_size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        if isinstance(size, str) and size.isdigit():
            size = int(size)
        else:
            raise BadRequest("size must be a whole number of bytes", field="size")
    if size <= 0:
        raise BadRequest("size must be greater than zero", field="size")
    if size > max_size:
        raise PayloadTooLarge(f"size {size} exceeds the limit of {max_size} bytes", field="size",
                              max_size=max_size)
    return size


def check_text(value: Any, name: str, limit: int, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", field=name)
    value = value.strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters", field=name)
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise BadRequest(f"{name} contains control characters", field=name)
    return value


def check_tags(tags: Any) -> list[str]:
    if tags is None or tags == "":
        return []
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest("tags must be a list of strings", field="tags")
    cleaned = []
    for tag in tags:
        tag = tag.strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise BadRequest(f"each tag is at most {MAX_TAG} characters", field="tags")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tags", field="tags")
    return cleaned


def check_new_upload(data: dict[str, Any], max_size: int) -> NewUpload:
    filename = check_filename(data.get("filename"))
    size = check_size(data.get("size"), max_size)
    content_type = data.get("content_type") or "application/octet-stream"
    if not isinstance(content_type, str) or not ACCEPTED_TYPES.match(content_type.strip()):
        raise UnsupportedMediaType(
            "content_type must be a video type (video/*) or application/octet-stream", field="content_type"
        )
    category = check_text(data.get("category"), "category", 40)
    if category and not CATEGORY.match(category):
        raise BadRequest("category is letters, digits, spaces, '&', '_' or '-'", field="category")
    title = check_text(data.get("title"), "title", MAX_TITLE) or os.path.splitext(filename)[0][:MAX_TITLE]
    return NewUpload(
        filename=filename,
        size=size,
        content_type=content_type.strip(),
        title=title,
        description=check_text(data.get("description"), "description", MAX_DESCRIPTION),
        tags=check_tags(data.get("tags")),
        category=category,
    )


def check_chunk_size(value: Optional[Any], default: int, minimum: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("chunk_size must be a whole number of bytes", field="chunk_size")
    if not minimum <= value <= maximum:
        raise BadRequest(f"chunk_size must be between {minimum} and {maximum} bytes", field="chunk_size")
    return value


def parse_content_digest(header: Optional[str]) -> Optional[bytes]:
    """RFC 9530 ``Content-Digest: sha-256=:<base64>:``; other algorithms are ignored."""
    if not header:
        return None
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "sha-256":
            value = value.strip()
            if value.startswith(":") and value.endswith(":") and len(value) > 2:
                try:
                    raw = base64.b64decode(value[1:-1], validate=True)
                except ValueError:
                    raw = b""
                if len(raw) == 32:
                    return raw
            raise BadRequest("Content-Digest sha-256 must be ':<base64 of 32 bytes>:'", field="Content-Digest")
    return None
