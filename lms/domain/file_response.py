"""What to answer to a GET or HEAD of a file: status, headers and body, decided without I/O.

Theory of operation. A shell stats the file (`FileFacts`) and hands the request's method and
headers to `plan_file_response`; the `FilePlan` it gets back says everything: the status, the
response headers, and the body as parts, each either `bytes` to send as they are (multipart
delimiters, a JSON error) or a `FileSlice` to read from the file. `lms/http/file_body.py` is the
one shell that sends a plan, for the signed media app and the Bearer route alike.

The preconditions are evaluated in RFC 9110 13.2.2's order:
1. `If-Match` (strong comparison; `*` matches the file) fails -> 412; without it,
   `If-Unmodified-Since` earlier than the file's Last-Modified -> 412.
2. `If-None-Match` (weak comparison, as RFC 9110 says for GET and HEAD) matches -> 304; without
   it, `If-Modified-Since` not earlier than Last-Modified -> 304. A date that does not parse is
   ignored, as the RFC requires.
3. `Range` (`lms/domain/ranges.py`), honoured only if `If-Range` names this very file: its strong
   ETag, or a date equal to Last-Modified (a weak or different tag, or another date, gets the
   whole file). HEAD gets the same status and headers as GET, with no body (as nginx answers).
The ETag is `"<mtime_ns hex>-<size hex>"`: any rewrite of the file changes it.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

import proto
from lms.domain.ranges import UNSATISFIABLE, WHOLE, ByteRange, parse_range, unsatisfiable_range
from proto.api import ErrorBody, ErrorDetail

_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')
_NANOSECONDS = 1_000_000_000


class RequestHeaders(Protocol):
    """The request's header fields, looked up by lower-case name: a case-insensitive mapping
    such as werkzeug's, or a dict built from ASGI's (lower-case) names."""

    def get(self, key: str, /) -> str | None: ...


@dataclass(frozen=True)
class FileFacts:
    """What a stat of the file says, all the planner needs of it."""

    size: int
    mtime_ns: int

    @property
    def etag(self) -> str:
        return f'"{self.mtime_ns:x}-{self.size:x}"'

    @property
    def modified(self) -> int:
        """Last modification in whole seconds, the precision of an HTTP date."""
        return self.mtime_ns // _NANOSECONDS

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.modified, usegmt=True)


@dataclass(frozen=True)
class FileSlice:
    offset: int
    length: int


BodyPart = bytes | FileSlice


@dataclass(frozen=True)
class FilePlan:
    """The answer, for the version of the file `facts` describe: a shell sending its slices
    checks that the file it opened is still that version."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: tuple[BodyPart, ...]
    facts: FileFacts

    @property
    def content_length(self) -> int:
        return sum(len(part) if isinstance(part, bytes) else part.length for part in self.body)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


def plan_file_response(
    method: str,
    headers: RequestHeaders,
    facts: FileFacts,
    *,
    content_type: str,
    cache_control: str,
) -> FilePlan:
    """The answer to `method` (GET or HEAD) of a file described by `facts`.

    `content_type` and `cache_control` are the caller's to choose; they are sent with 200, 206
    and 304 alike.
    """
    if method not in ("GET", "HEAD"):
        raise ValueError(f"a file is planned for GET or HEAD, not {method}")
    head = method == "HEAD"
    validators = (
        ("ETag", facts.etag),
        ("Last-Modified", facts.last_modified),
        ("Cache-Control", cache_control),
    )
    if not _preconditions_hold(headers, facts):
        message = "the file does not match If-Match/If-Unmodified-Since"
        return _error(412, "precondition_failed", message, facts, head)
    if _not_modified(headers, facts):
        return FilePlan(304, validators, (), facts)
    wanted = parse_range(headers.get("range"), facts.size)
    if not _range_applies(headers.get("if-range"), facts):
        wanted = WHOLE
    if wanted is UNSATISFIABLE:
        plan = _error(
            416,
            "range_not_satisfiable",
            f"the file has {facts.size} bytes; ask for a range inside it",
            facts,
            head,
        )
        unsatisfiable = ("Content-Range", unsatisfiable_range(facts.size))
        return FilePlan(416, (*plan.headers, unsatisfiable), plan.body, facts)
    common = (("Accept-Ranges", "bytes"), *validators)
    if not isinstance(wanted, tuple):
        return _plan(200, common, content_type, (FileSlice(0, facts.size),), facts, head)
    if len(wanted) == 1:
        [part] = wanted
        ranged = (*common, ("Content-Range", part.content_range(facts.size)))
        whole = (FileSlice(part.first, part.length),)
        return _plan(206, ranged, content_type, whole, facts, head)
    boundary = _boundary(facts)
    parts = _multipart(wanted, facts.size, content_type, boundary)
    multipart = f"multipart/byteranges; boundary={boundary}"
    return _plan(206, common, multipart, parts, facts, head)


def _plan(
    status: int,
    headers: tuple[tuple[str, str], ...],
    content_type: str,
    body: tuple[BodyPart, ...],
    facts: FileFacts,
    head: bool,
) -> FilePlan:
    length = FilePlan(status, (), body, facts).content_length
    described = (("Content-Type", content_type), ("Content-Length", str(length)), *headers)
    return FilePlan(status, described, () if head else body, facts)


def _error(status: int, code: str, message: str, facts: FileFacts, head: bool) -> FilePlan:
    body = proto.encode(ErrorBody(ErrorDetail(code, message)))
    return _plan(status, (), "application/json", (body,), facts, head)


def _multipart(
    ranges: tuple[ByteRange, ...], size: int, content_type: str, boundary: str
) -> tuple[BodyPart, ...]:
    """RFC 9110 14.6's body, laid out as nginx lays it out (a CRLF before every delimiter)."""
    parts: list[BodyPart] = []
    for part in ranges:
        parts.append(
            f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: {part.content_range(size)}\r\n\r\n".encode("latin-1")
        )
        parts.append(FileSlice(part.first, part.length))
    parts.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return tuple(parts)


def _boundary(facts: FileFacts) -> str:
    # Fixed per file version, so a plan is a pure function of its inputs; a file that happened
    # to contain this line would confuse a client, as nginx's counter could, and no media file
    # of ours is built from request input.
    return hashlib.sha256(facts.etag.encode()).hexdigest()[:32]


def _preconditions_hold(headers: RequestHeaders, facts: FileFacts) -> bool:
    if_match = headers.get("if-match")
    if if_match is not None:
        return if_match.strip(" \t") == "*" or any(
            not weak and tag == facts.etag for weak, tag in _entity_tags(if_match)
        )
    since = _http_date(headers.get("if-unmodified-since"))
    return since is None or facts.modified <= since


def _not_modified(headers: RequestHeaders, facts: FileFacts) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return if_none_match.strip(" \t") == "*" or any(
            tag == facts.etag for _, tag in _entity_tags(if_none_match)
        )
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and facts.modified <= since


def _range_applies(if_range: str | None, facts: FileFacts) -> bool:
    if if_range is None:
        return True
    if_range = if_range.strip(" \t")
    if if_range.endswith('"'):
        return if_range == facts.etag  # strong: a weak tag never matches
    return _http_date(if_range) == facts.modified


def _entity_tags(field: str) -> list[tuple[bool, str]]:
    return [(bool(weak), tag) for weak, tag in _ENTITY_TAG.findall(field)]


def _http_date(text: str | None) -> int | None:
    """An HTTP-date (any of RFC 9110's three formats) in whole seconds, or None."""
    if text is None:
        return None
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    try:
        return int(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None
