"""The small interfaces every engine sits behind, one module per port.

Each has an embedded (``lite``) implementation, a production engine (``full``; Redis serves both
stacks for the cache, coordination and upload sessions) and, for unit tests only, an in-memory fake
under ``tests/fakes``. One contract suite per interface (``tests/contract``) runs against every
implementation. Everything is importable from ``reelhouse.ports`` itself.
"""

from __future__ import annotations

from reelhouse.ports.object_store import (
    Body, ObjectStoreError, NoSuchKey, NoSuchUpload, InvalidPart, EntityTooSmall, InvalidRange, InvalidWriteOffset,
    ObjectInfo, PartInfo, MIN_PART_SIZE, ObjectStore,
)
from reelhouse.ports.catalog import (
    CatalogError, VideoNotFound, Page, CommentPage, encode_page_token, decode_page_token, Catalog,
)
from reelhouse.ports.bus import (
    Message, Bus, encode_records, Subscription,
)
from reelhouse.ports.cache import (
    Cache,
)
from reelhouse.ports.coordination import (
    Lease, Coordination, CoordinationKeys,
)
from reelhouse.ports.upload_sessions import (
    UploadSessionStore, UploadSessionKeys,
)
from reelhouse.ports.rate_limits import (
    RateLimits, RateLimitKeys,
)

__all__ = [
    "RateLimits",
    "RateLimitKeys",
    "Body",
    "ObjectStoreError",
    "NoSuchKey",
    "NoSuchUpload",
    "InvalidPart",
    "EntityTooSmall",
    "InvalidRange",
    "InvalidWriteOffset",
    "ObjectInfo",
    "PartInfo",
    "MIN_PART_SIZE",
    "ObjectStore",
    "CatalogError",
    "VideoNotFound",
    "Page",
    "CommentPage",
    "encode_page_token",
    "decode_page_token",
    "Catalog",
    "Message",
    "Bus",
    "encode_records",
    "Subscription",
    "Cache",
    "Lease",
    "Coordination",
    "CoordinationKeys",
    "UploadSessionStore",
    "UploadSessionKeys",
]
