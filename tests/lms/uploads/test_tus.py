"""The tus 1.0 rules, without a server."""

import base64

import pytest

from lms.errors import Conflict, Invalid, TooLarge
from lms.uploads import tus


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_only_tus_1_0_0_is_spoken() -> None:
    tus.check_version("1.0.0")
    for other in (None, "0.2.2", "1.0", ""):
        with pytest.raises(tus.UnsupportedVersion) as refused:
            tus.check_version(other)
        assert refused.value.status == 412


def test_the_length_is_a_whole_number_within_the_limit() -> None:
    assert tus.parse_length("0", 10) == 0
    assert tus.parse_length(" 10 ", 10) == 10
    with pytest.raises(TooLarge):
        tus.parse_length("11", 10)
    for bad in (None, "-1", "1.5", "ten", "1e3", "9" * 30):
        with pytest.raises(tus.BadTusRequest):
            tus.parse_length(bad, 10)


def test_metadata_is_decoded_and_names_the_content_and_file() -> None:
    header = f"content_id {b64('42')},filename {b64('Leçon 1.mp4')},is_private"
    metadata = tus.parse_metadata(header)
    assert metadata == {"content_id": "42", "filename": "Leçon 1.mp4", "is_private": ""}
    assert tus.upload_target(metadata) == tus.UploadTarget(42, "Leçon 1.mp4")
    assert tus.parse_metadata(tus.encode_metadata(metadata)) == metadata
    # Some clients say `name`; with neither, the file is just an upload.
    assert tus.upload_target({"content_id": "7", "name": "a.mov"}).filename == "a.mov"
    assert tus.upload_target({"content_id": "7"}).filename == "upload"
    assert tus.parse_metadata(None) == {}


@pytest.mark.parametrize(
    "header",
    ["content_id !!!", f"content_id {b64('1')},content_id {b64('2')}", f"bad key {b64('1')}"],
)
def test_malformed_metadata_is_refused(header: str) -> None:
    with pytest.raises(Invalid):
        tus.parse_metadata(header)


@pytest.mark.parametrize("content_id", [None, "", "0", "-3", "abc", "1.5", str(2**63)])
def test_an_upload_must_name_a_content(content_id: str | None) -> None:
    metadata = {} if content_id is None else {"content_id": content_id}
    with pytest.raises(Invalid, match="content_id"):
        tus.upload_target(metadata)
    with pytest.raises(Invalid, match="longer"):
        tus.upload_target({"content_id": "1", "filename": "x" * 300})
    with pytest.raises(Invalid, match="NUL"):
        tus.upload_target({"content_id": "1", "filename": "a\x00b.mp4"})


def test_a_patch_carries_raw_bytes_from_the_current_offset_that_fit() -> None:
    ok = "application/offset+octet-stream"
    tus.check_patch(ok, "5", 5, offset=5, length=10)
    tus.check_patch(ok + "; charset=binary", "5", None, offset=5, length=10)
    with pytest.raises(tus.NotOffsetStream):
        tus.check_patch("application/json", "5", 5, offset=5, length=10)
    with pytest.raises(tus.BadTusRequest):
        tus.check_patch(ok, None, 5, offset=5, length=10)
    with pytest.raises(Conflict) as mismatch:
        tus.check_patch(ok, "4", 5, offset=5, length=10)
    assert mismatch.value.code == "offset_mismatch"
    with pytest.raises(TooLarge):
        tus.check_patch(ok, "5", 6, offset=5, length=10)


def test_a_body_is_cut_off_at_the_uploads_length() -> None:
    window = tus.BodyWindow(offset=4, length=10)
    assert window.accept(b"abc") == b"abc"
    assert not window.overflowed
    assert window.accept(b"defgh") == b"def"
    assert window.overflowed
    assert window.offset == 10
