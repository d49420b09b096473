import base64
import hashlib

import pytest

from reelhouse.services.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from reelhouse.services.upload_requests import (
    check_filename, check_new_upload, check_tags, parse_content_digest,
)


@pytest.mark.parametrize("name", ["clip.mp4", "Mon film été.mkv", "a b (1).mov", "x"])
def test_plain_names_pass(name):
    assert check_filename(name) == name


@pytest.mark.parametrize("name", ["../a.mp4", "a/b.mp4", "a\\b", "..", ".", "", "  ", "a\x00b", "a\u202eb.mp4",
                                  "C:\\x.mp4", "x" * 256, None, 5])
def test_path_tricks_and_junk_are_refused(name):
    with pytest.raises(BadRequest) as info:
        check_filename(name)
    assert info.value.field == "filename"


def test_new_upload_defaults_title_and_normalises_tags():
    new = check_new_upload({"filename": "holiday.MP4", "size": 10, "tags": "Beach, sun,beach,,"}, 100)
    assert new.title == "holiday" and new.tags == ["beach", "sun"] and new.extension == ".mp4"
    assert new.content_type == "application/octet-stream"


def test_size_and_type_limits():
    with pytest.raises(PayloadTooLarge):
        check_new_upload({"filename": "a.mp4", "size": 101}, 100)
    with pytest.raises(BadRequest):
        check_new_upload({"filename": "a.mp4", "size": True}, 100)
    with pytest.raises(UnsupportedMediaType):
        check_new_upload({"filename": "a.mp4", "size": 1, "content_type": "image/png"}, 100)


def test_too_many_tags():
    with pytest.raises(BadRequest, match="at most"):
        check_tags([f"t{i}" for i in range(31)])


def test_content_digest_parsing():
    raw = hashlib.sha256(b"x").digest()
    assert parse_content_digest(f"sha-256=:{base64.b64encode(raw).decode()}:") == raw
    assert parse_content_digest("md5=:abc:") is None
    assert parse_content_digest(None) is None
    with pytest.raises(BadRequest):
        parse_content_digest("sha-256=:AAAA:")
