"""HTTP byte ranges (RFC 9110 section 14): which bytes of a file of `size` a request asks for.

What `parse_range` answers, and what the response is:
- no `Range`, another unit, a malformed header, or several ranges -> `WHOLE`: 200 with the whole
  file. RFC 9110 lets a server ignore a Range it does not honour; players ask for one range at a
  time, and answering several with multipart/byteranges buys nothing here.
- one satisfiable range (`bytes=0-99`, `bytes=100-`, `bytes=-500`) -> `ByteRange`: 206 with
  `Content-Range: bytes first-last/size`. An end past the file is cut to the last byte; a
  suffix longer than the file means the whole file.
- one range that starts at or past the end, or any range of an empty file -> `UNSATISFIABLE`:
  416 with `Content-Range: bytes */size`.
`range_applies` implements `If-Range`: a range request for a file that has changed since the
client's copy gets the whole new file instead.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Answer(enum.Enum):
    WHOLE = "whole"
    UNSATISFIABLE = "unsatisfiable"


WHOLE = Answer.WHOLE
UNSATISFIABLE = Answer.UNSATISFIABLE


@dataclass(frozen=True)
class ByteRange:
    first: int
    last: int  # inclusive

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | Answer:
    if header is None or "," in header:
        return WHOLE
    match = _SPEC.match(header)
    if match is None:
        return WHOLE
    first, last = match[1], match[2]
    if not first and not last:
        return WHOLE
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return WHOLE  # malformed: ignored, as the RFC allows
    if start >= size:
        return UNSATISFIABLE
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def unsatisfiable_range(size: int) -> str:
    return f"bytes */{size}"


def range_applies(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Whether to honour Range given the request's If-Range (an entity tag or a date)."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(("W/", '"')):
        return if_range == etag  # a weak tag never matches: ranges need byte-identical files
    return if_range == last_modified
