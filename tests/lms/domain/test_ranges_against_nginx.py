"""The range planner answers as nginx does: a real nginx (Debian's package, tests/nginx.py)
serves a file on loopback, and for each Range header its status and bytes are compared with the
plan's.

nginx sends overlapping and adjacent ranges as asked, where we coalesce them (RFC 9110 14.6
allows either): for those headers the bytes covered are compared, and ours are disjoint.
"""

from __future__ import annotations

import http.client
import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import trio

from lms.domain.file_response import FileFacts, FileSlice, plan_file_response
from lms.domain.ranges import MAX_RANGES
from tests.nginx import start_nginx
from tests.services import scratch_dir

SIZE = 10_000
CONTENT_TYPE = "video/mp4"

HEADERS = [
    None,
    "bytes=0-99",
    "bytes=0-0",
    "bytes=9999-9999",
    "bytes=500-",
    "bytes=-100",
    "bytes=-20000",
    "bytes=9990-20000",
    "BYTES=1-2",
    "Bytes=1-2",
    "bytes=1 - 2",
    "bytes= 1-2",
    "bytes=1-2 ",
    " bytes = 0-9",
    "bytes =0-9",
    "bytes=0-10, 20-30",
    "bytes=0-10,20-30,40-50",
    "bytes=500-600,0-10",
    "bytes=0-10,5-15",
    "bytes=0-9,10-19",
    "bytes=0-9,11-19",
    "bytes=0-,0-",
    "bytes=0-4999,5000-",
    "bytes=0-5000,5000-",
    "bytes=0-1,20000-30000",
    "bytes=20000-30000,-5",
    "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES)),
    "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1)),
    "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1)) + ",x",
    "bytes=5-2",
    "bytes=abc",
    "bytes=-",
    "bytes=",
    "bytes=--5",
    "bytes=1-2-3",
    "bytes=0-10,,20-30",
    "bytes=0-10,",
    "bytes=0-10,x",
    "bytes=x,0-10",
    "bytes=10000-",
    "bytes=-0",
    "bytes=0-9999999999999999999999",
    "bytes=9223372036854775807-",
    "bytes=9223372036854775808-",
    "bytes=0-9223372036854775807",
    "items=0-5",
    "0-5",
    "bytes=\u00b2-5",
    "bytes=0-10;20-30",
]


@dataclass(frozen=True)
class Answer:
    status: int
    parts: list[tuple[str | None, bytes]]  # (Content-Range, bytes) per part


@dataclass(frozen=True)
class Nginx:
    port: int
    content: bytes
    facts: FileFacts


@pytest.fixture
async def nginx() -> AsyncIterator[Nginx]:
    with scratch_dir("lms-test-ranges-") as directory:
        root = directory / "root"
        root.mkdir()
        content = (bytes(range(256)) * (SIZE // 256 + 1))[:SIZE]
        (root / "clip.mp4").write_bytes(content)
        info = (root / "clip.mp4").stat()

        # nginx's max_ranges is unlimited by default: ours is its cap.
        def http(port: int) -> str:
            return f"max_ranges {MAX_RANGES}; server {{ listen 127.0.0.1:{port}; root {root}; }}"

        running = await start_nginx(directory, http, access_log=False)
        try:
            yield Nginx(running.port, content, FileFacts(info.st_size, info.st_mtime_ns))
        finally:
            with trio.CancelScope(shield=True):
                await running.stop()


def _ask_nginx(nginx: Nginx, method: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """Through http.client, which sends a value as given (` bytes = 0-9` included)."""
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    connection.request(method, "/clip.mp4", headers=headers)
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def _nginx_answer(nginx: Nginx, headers: dict[str, str]) -> Answer:
    response = _ask_nginx(nginx, "GET", headers)
    content_type = response.getheader("Content-Type")
    return _answer(response.status, content_type, response.body, response.getheader)  # type: ignore[attr-defined]


def _our_answer(nginx: Nginx, headers: dict[str, str]) -> Answer:
    plan = plan_file_response(
        "GET",
        {name.lower(): value for name, value in headers.items()},
        nginx.facts,
        content_type=CONTENT_TYPE,
        cache_control="no-cache",
    )
    body = b"".join(
        nginx.content[part.offset : part.offset + part.length]
        if isinstance(part, FileSlice)
        else part
        for part in plan.body
    )
    assert len(body) == plan.content_length == int(plan.header("Content-Length") or -1)
    return _answer(plan.status, plan.header("Content-Type"), body, plan.header)


def _answer(
    status: int, content_type: str | None, body: bytes, header: Callable[[str], str | None]
) -> Answer:
    if status == 206 and content_type and content_type.startswith("multipart/byteranges"):
        boundary = content_type.split("boundary=")[1]
        return Answer(status, _multipart_parts(body, boundary))
    if status == 206:
        return Answer(status, [(header("Content-Range"), body)])
    if status == 416:
        return Answer(status, [(header("Content-Range"), b"")])
    return Answer(status, [(None, body)])


def _multipart_parts(body: bytes, boundary: str) -> list[tuple[str | None, bytes]]:
    delimiter = f"\r\n--{boundary}".encode()
    assert body.endswith(delimiter + b"--\r\n")
    parts: list[tuple[str | None, bytes]] = []
    for chunk in body.split(delimiter)[1:-1]:
        head, data = chunk.split(b"\r\n\r\n", 1)
        found = re.search(rb"Content-Range: (bytes \S+)", head, re.IGNORECASE)
        assert found, head
        parts.append((found[1].decode(), data))
    return parts


def _spans(answer: Answer) -> list[tuple[int, int]]:
    """The parts' byte spans, inclusive, sorted."""
    return sorted(
        (int(first), int(last))
        for first, last in (
            content_range.split()[1].split("/")[0].split("-")
            for content_range, _ in answer.parts
            if content_range
        )
    )


def _covered(answer: Answer) -> dict[int, int]:
    """Every byte offset the parts send, with its value."""
    covered: dict[int, int] = {}
    for content_range, data in answer.parts:
        assert content_range is not None
        first = int(content_range.split()[1].split("-")[0])
        covered.update((first + index, value) for index, value in enumerate(data))
    return covered


def _overlapping(answer: Answer) -> bool:
    spans = _spans(answer)
    return any(after[0] <= before[1] + 1 for before, after in itertools.pairwise(spans))


def _differences(nginx: Nginx) -> list[str]:
    differences = []
    for header in HEADERS:
        headers = {} if header is None else {"Range": header}
        theirs = _nginx_answer(nginx, headers)
        ours = _our_answer(nginx, headers)
        if theirs.status == 206 and _overlapping(theirs):
            # nginx sends what was asked; we coalesce into disjoint parts of the same bytes.
            same = ours.status == 206 and _covered(ours) == _covered(theirs)
            same = same and not _overlapping(ours)
        else:
            same = ours == theirs
        if not same:
            differences.append(f"{header!r}: nginx {theirs.status}, ours {ours.status}")
    return differences


async def test_every_range_header_gets_the_status_and_bytes_nginx_sends(nginx: Nginx) -> None:
    assert await trio.to_thread.run_sync(_differences, nginx) == []


def _if_range_statuses(nginx: Nginx) -> dict[str, tuple[int, int]]:
    # nginx's ETag is built from whole seconds, ours from nanoseconds: each is asked with its own.
    plain = _ask_nginx(nginx, "GET", {})
    assert plain.getheader("Last-Modified") == nginx.facts.last_modified
    theirs, ours = plain.getheader("ETag") or "", nginx.facts.etag
    cases = {
        "its ETag": (theirs, ours),
        "its weak ETag": ("W/" + theirs, "W/" + ours),
        "another ETag": ('"other"', '"other"'),
        "its date": (nginx.facts.last_modified,) * 2,
        "another date": ("Thu, 01 Jan 2015 00:00:00 GMT",) * 2,
    }
    return {
        case: (
            _ask_nginx(nginx, "GET", {"Range": "bytes=0-9", "If-Range": nginx_value}).status,
            _our_answer(nginx, {"Range": "bytes=0-9", "If-Range": our_value}).status,
        )
        for case, (nginx_value, our_value) in cases.items()
    }


async def test_if_range_is_honoured_as_nginx_honours_it(nginx: Nginx) -> None:
    statuses = await trio.to_thread.run_sync(_if_range_statuses, nginx)
    assert statuses == {
        "its ETag": (206, 206),
        "its weak ETag": (200, 200),
        "another ETag": (200, 200),
        "its date": (206, 206),
        "another date": (200, 200),
    }


async def test_head_with_a_range_gets_the_headers_of_the_get(nginx: Nginx) -> None:
    theirs = await trio.to_thread.run_sync(_ask_nginx, nginx, "HEAD", {"Range": "bytes=0-9"})
    ours = plan_file_response(
        "HEAD", {"range": "bytes=0-9"}, nginx.facts, content_type=CONTENT_TYPE, cache_control=""
    )
    assert (ours.status, ours.body) == (theirs.status, ())
    for name in ("Content-Length", "Content-Range"):
        assert ours.header(name) == theirs.getheader(name)
