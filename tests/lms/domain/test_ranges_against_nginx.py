"""The range planner answers as nginx does: a real nginx (Debian's package) serves a file on
loopback, and for each Range header its status and bytes are compared with the plan's.

nginx sends overlapping and adjacent ranges as asked, where we coalesce them (RFC 9110 14.6
allows either): for those headers the bytes covered are compared, and ours are disjoint.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lms.domain.file_response import FileFacts, FileSlice, plan_file_response
from lms.domain.ranges import MAX_RANGES
from lms.store.postgres_cluster import pick_free_port

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


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx not found; `make system-deps` installs it (apt: nginx-light)")
    prefix = tmp_path_factory.mktemp("nginx")
    root = prefix / "root"
    root.mkdir()
    content = bytes(range(256)) * (SIZE // 256) + b"end" * ((SIZE % 256) // 3 + 1)
    content = content[:SIZE]
    (root / "clip.mp4").write_bytes(content)
    port = pick_free_port()
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}
    types {{ video/mp4 mp4; }}
    max_ranges {MAX_RANGES};
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_listening(process, port, prefix / "error.log")
        stat = (root / "clip.mp4").stat()
        yield Nginx(port, content, FileFacts(stat.st_size, stat.st_mtime_ns))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"nginx did not start:\n{text}")
            time.sleep(0.02)
        else:
            return


def _ask_nginx(nginx: Nginx, method: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    connection.request(method, "/clip.mp4", headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _nginx_answer(nginx: Nginx, headers: dict[str, str]) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    connection.request("GET", "/clip.mp4", headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return _answer(response.status, response.getheader("Content-Type"), body, response)


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
    return _answer(plan.status, plan.header("Content-Type"), body, plan)


def _answer(status: int, content_type: str | None, body: bytes, source: object) -> Answer:
    header = source.getheader if hasattr(source, "getheader") else source.header  # type: ignore[attr-defined]
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
    parts = []
    for chunk in body.split(delimiter)[1:-1]:
        head, data = chunk.split(b"\r\n\r\n", 1)
        found = re.search(rb"Content-Range: (bytes \S+)", head, re.IGNORECASE)
        assert found, head
        parts.append((found[1].decode(), data))
    return parts


def _covered(answer: Answer) -> dict[int, int]:
    """Every byte offset the parts send, with its value."""
    covered: dict[int, int] = {}
    for content_range, data in answer.parts:
        assert content_range is not None
        first = int(content_range.split()[1].split("-")[0])
        covered.update((first + index, value) for index, value in enumerate(data))
    return covered


def _overlaps(answer: Answer) -> bool:
    spans = sorted(
        (int(first), int(last))
        for first, last in (
            part[0].split()[1].split("/")[0].split("-") for part in answer.parts if part[0]
        )
    )
    return any(next_first <= last + 1 for (_, last), (next_first, _) in itertools.pairwise(spans))


@pytest.mark.parametrize("header", HEADERS)
def test_a_range_header_gets_the_status_and_bytes_nginx_sends(
    nginx: Nginx, header: str | None
) -> None:
    headers = {} if header is None else {"Range": header}
    theirs = _nginx_answer(nginx, headers)
    ours = _our_answer(nginx, headers)
    assert ours.status == theirs.status
    if theirs.status == 206 and _overlaps(theirs):
        # nginx sends what was asked; we coalesce into disjoint parts covering the same bytes.
        assert _covered(ours) == _covered(theirs)
        assert not _overlaps(ours)
    else:
        assert ours.parts == theirs.parts


@pytest.mark.parametrize(
    ("if_range", "honoured"),
    [("etag", True), ("date", True), ("W/etag", False), ('"other"', False), ("old date", False)],
)
def test_if_range_is_honoured_as_nginx_honours_it(
    nginx: Nginx, if_range: str, honoured: bool
) -> None:
    # nginx's ETag is built from whole seconds, ours from nanoseconds: each is asked with its own.
    plain = _ask_nginx(nginx, "GET", {})
    assert plain.getheader("Last-Modified") == nginx.facts.last_modified
    for etag, ask in (
        (plain.getheader("ETag") or "", lambda h: _ask_nginx(nginx, "GET", h).status),
        (nginx.facts.etag, lambda h: _our_answer(nginx, h).status),
    ):
        value = {
            "etag": etag,
            "W/etag": "W/" + etag,
            "date": nginx.facts.last_modified,
            '"other"': '"other"',
            "old date": "Thu, 01 Jan 2015 00:00:00 GMT",
        }[if_range]
        assert ask({"Range": "bytes=0-9", "If-Range": value}) == (206 if honoured else 200)


def test_head_with_a_range_gets_the_headers_of_the_get(nginx: Nginx) -> None:
    headers = {"Range": "bytes=0-9"}
    theirs = _ask_nginx(nginx, "HEAD", headers)
    ours = plan_file_response(
        "HEAD", {"range": "bytes=0-9"}, nginx.facts, content_type=CONTENT_TYPE, cache_control=""
    )
    assert (ours.status, ours.body) == (theirs.status, ())
    for name in ("Content-Length", "Content-Range"):
        assert ours.header(name) == theirs.getheader(name)
