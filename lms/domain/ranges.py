"""HTTP byte ranges (RFC 9110 section 14): which bytes of a file of `size` a request asks for.

Theory of operation. RFC 9110 leaves a server several choices (what to do with a malformed
header, how many ranges to honour, whether to coalesce). We answer as nginx 1.22 does
(`ngx_http_range_parse`), so a player sees the same bytes whether nginx or the node serves them;
`tests/lms/domain/test_ranges_against_nginx.py` holds the two side by side. `parse_range` answers:
- no `Range`, or one that does not start with `bytes=` (any case, nothing before it: nginx
  compares the first six bytes, so ` bytes = 0-9` and `items=0-5` are ignored) -> `WHOLE`.
- `bytes=` followed by anything that is not a list of `first-last`, `first-` or `-suffix` specs
  (spaces allowed around the numbers and commas; not tabs, not empty elements), or a number past
  2^63-1 (nginx's off_t overflow) -> `UNSATISFIABLE`: 416 with `Content-Range: bytes */size`.
  Parsing stops at the first malformed spec, so what comes after it does not matter.
- Each spec is cut to the file (an end past it to the last byte; a suffix longer than the file
  means all of it). Specs that then select nothing (`5-2`, a start at or past the end, `-0`) are
  dropped; when none is left, `UNSATISFIABLE`. An empty file has no satisfiable range, yet nginx
  answers a spec starting at 0 with the whole (empty) file: `WHOLE`.
- Range amplification: more than `MAX_RANGES` specs, or specs whose lengths add up to more than
  the file (overlaps asking for the same bytes again and again) -> `WHOLE`, 200 with the file once.
- Otherwise the ranges, overlapping and adjacent ones coalesced (RFC 9110 14.6 allows it; nginx
  sends them as asked), in the order the request named them (its SHOULD), each group where its
  first member was: one range -> a plain 206, several -> `multipart/byteranges`.
Conditional requests (`If-Range` among them) are `lms/domain/file_response.py`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# nginx's max_ranges is unlimited by default; a player asks for one range, a PDF reader a few.
MAX_RANGES = 16
# nginx parses into off_t and answers 416 past its maximum.
MAX_OFFSET = 2**63 - 1
_UNIT = "bytes="
_DIGITS = frozenset("0123456789")


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


class _Malformed(Exception):
    pass


class _Scanner:
    """nginx's pointer walk over a range set: the end of the text reads as NUL."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else "\0"

    def take(self) -> str:
        char = self.peek()
        self.at += 1
        return char

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.at += 1

    def number(self) -> int:
        if self.peek() not in _DIGITS:
            raise _Malformed
        value = 0
        while self.peek() in _DIGITS:
            value = value * 10 + int(self.take())
            if value > MAX_OFFSET:
                raise _Malformed
        return value


def parse_range(header: str | None, size: int) -> tuple[ByteRange, ...] | Answer:
    """The ranges of a file of `size` bytes that `header` (a Range field value) selects, or
    whether to answer with the whole file or 416. See the module's docstring."""
    if header is None:
        return WHOLE
    header = header.strip(" \t")  # what any HTTP parser strips from a field value
    if len(header) <= len(_UNIT) or header[: len(_UNIT)].lower() != _UNIT:
        return WHOLE
    try:
        return _parse_set(_Scanner(header[len(_UNIT) :]), size)
    except _Malformed:
        return UNSATISFIABLE


def _parse_set(scan: _Scanner, size: int) -> tuple[ByteRange, ...] | Answer:
    wanted: list[tuple[int, int]] = []  # half-open [start, end), in the order asked
    total = 0
    while True:
        start, end = _parse_spec(scan, size)
        if start < end:
            wanted.append((start, end))
            total += end - start
            if len(wanted) > MAX_RANGES:
                return WHOLE
        elif start == 0:
            return WHOLE  # an empty file: nginx declines rather than refuses
        if scan.take() != ",":
            break
    if not wanted:
        return UNSATISFIABLE
    if total > size:
        return WHOLE
    return _coalesce(wanted)


def _parse_spec(scan: _Scanner, size: int) -> tuple[int, int]:
    """One `first-last`, `first-` or `-suffix` as a half-open span cut to the file; leaves the
    scanner on the comma or end after it."""
    scan.skip_spaces()
    if scan.peek() == "-":
        scan.take()
        suffix = _last_number(scan)
        return max(size - suffix, 0), size
    start = scan.number()
    scan.skip_spaces()
    if scan.take() != "-":
        raise _Malformed
    scan.skip_spaces()
    if scan.peek() in (",", "\0"):
        return start, size
    return start, min(_last_number(scan) + 1, size)


def _last_number(scan: _Scanner) -> int:
    value = scan.number()
    scan.skip_spaces()
    if scan.peek() not in (",", "\0"):
        raise _Malformed
    return value


def _coalesce(wanted: list[tuple[int, int]]) -> tuple[ByteRange, ...]:
    """Merge spans that overlap or touch; each merged span keeps the place of its first member."""
    order = sorted(range(len(wanted)), key=lambda index: wanted[index])
    groups: list[tuple[int, int, int]] = []  # (first request index, start, end)
    for index in order:
        start, end = wanted[index]
        if groups and start <= groups[-1][2]:
            place, first, last = groups[-1]
            groups[-1] = (min(place, index), first, max(last, end))
        else:
            groups.append((index, start, end))
    groups.sort()
    return tuple(ByteRange(start, end - 1) for _, start, end in groups)


def unsatisfiable_range(size: int) -> str:
    return f"bytes */{size}"
