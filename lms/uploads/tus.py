"""The tus 1.0 resumable-upload protocol's rules, without I/O.

https://tus.io/protocols/resumable-upload: a client creates an upload (`POST` with
`Upload-Length` and `Upload-Metadata`), then sends its bytes in one or more `PATCH`es, each
starting at the `Upload-Offset` the server has; `HEAD` tells where the server is, so a client that
lost a connection (or a new client, days later) resumes from there. Extensions served here:
creation, termination (`DELETE`) and expiration (an untouched unfinished upload expires).

These functions read header values and return plain data, or raise the error the client gets.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from lms.domain.upload_names import shown_name
from lms.errors import Conflict, Invalid, LmsError, TooLarge
from proto.api import MAX_ID

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
OFFSET_STREAM = "application/offset+octet-stream"
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEY = re.compile(r"^[^\s,]+$")
MAX_FILENAME = 255


class UnsupportedVersion(LmsError):
    status = 412
    code = "unsupported_tus_version"


class NotOffsetStream(LmsError):
    status = 415
    code = "unsupported_media_type"


class BadTusRequest(LmsError):
    status = 400
    code = "bad_tus_request"


class OffsetMismatch(Conflict):
    code = "offset_mismatch"


@dataclass(frozen=True)
class UploadTarget:
    """What a new upload is for, from its metadata."""

    content_id: int
    filename: str


def check_version(tus_resumable: str | None) -> None:
    """Every request but OPTIONS names the protocol version it speaks."""
    if tus_resumable != VERSION:
        raise UnsupportedVersion(
            f"send 'Tus-Resumable: {VERSION}'; this server speaks tus {VERSION} only"
        )


def parse_length(upload_length: str | None, max_size: int) -> int:
    if upload_length is None:
        raise BadTusRequest(
            "send the file's size in Upload-Length (deferred lengths are not supported)"
        )
    length = _whole_number("Upload-Length", upload_length)
    if length > max_size:
        raise TooLarge(f"the file is {length} bytes; uploads may be at most {max_size} bytes")
    return length


def parse_metadata(upload_metadata: str | None) -> dict[str, str]:
    """`key base64value,key2 base64value2,key3` into a dict (a key without a value maps to "")."""
    pairs: dict[str, str] = {}
    if not upload_metadata or not upload_metadata.strip():
        return pairs
    for item in upload_metadata.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not _KEY.match(key):
            raise Invalid(f"Upload-Metadata has an invalid key {key!r}")
        if key in pairs:
            raise Invalid(f"Upload-Metadata names {key!r} twice")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Invalid(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return pairs


def upload_target(metadata: dict[str, str]) -> UploadTarget:
    """The content an upload is for (`content_id`, required) and its file name (`filename`, or
    `name` as some clients send it)."""
    raw_id = metadata.get("content_id", "")
    if not _DIGITS.match(raw_id) or not 1 <= int(raw_id) <= MAX_ID:
        raise Invalid("Upload-Metadata must carry content_id: the id of the video content")
    filename = (metadata.get("filename") or metadata.get("name") or "upload").strip()
    if len(filename) > MAX_FILENAME:
        raise Invalid(f"the file name is longer than {MAX_FILENAME} characters")
    if "\x00" in filename:  # PostgreSQL cannot store it
        raise Invalid("the file name may not contain the NUL character")
    # Stored as the upload's name only, never as a path (lms/domain/upload_names.py).
    return UploadTarget(int(raw_id), shown_name(filename))


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())


def check_patch(
    content_type: str | None,
    upload_offset: str | None,
    content_length: int | None,
    *,
    offset: int,
    length: int,
) -> None:
    """A PATCH must carry raw bytes that start where the upload stands and fit in it."""
    if (content_type or "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise NotOffsetStream(f"send the bytes with Content-Type: {OFFSET_STREAM}")
    if upload_offset is None:
        raise BadTusRequest("send Upload-Offset: where these bytes start")
    claimed = _whole_number("Upload-Offset", upload_offset)
    if claimed != offset:
        raise OffsetMismatch(
            f"the upload is at offset {offset}, not {claimed}; ask with HEAD and resume from there"
        )
    if content_length is not None and offset + content_length > length:
        raise TooLarge(f"these bytes would run past the upload's length of {length}")


class BodyWindow:
    """Cuts a PATCH body off at the upload's length.

    `accept(chunk)` returns the part of the chunk that fits; `overflowed` says whether bytes past
    the length arrived (the client is then told 413, after what fitted is kept).
    """

    def __init__(self, offset: int, length: int) -> None:
        self.offset = offset
        self._length = length
        self.overflowed = False

    def accept(self, chunk: bytes) -> bytes:
        room = self._length - self.offset
        if len(chunk) > room:
            self.overflowed = True
            chunk = chunk[:room]
        self.offset += len(chunk)
        return chunk


def _whole_number(name: str, value: str) -> int:
    if not _DIGITS.match(value.strip()):
        raise BadTusRequest(f"{name} must be a whole number of bytes, not {value!r}")
    return int(value.strip())
