"""The file-response planner: for any request, the bytes a plan sends are the file's, with the
status the range parser and the preconditions decided."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lms.domain.file_response import FileFacts, FilePlan, FileSlice, plan_file_response
from lms.domain.ranges import UNSATISFIABLE, WHOLE, parse_range

CONTENT = bytes(range(256)) * 4 + b"tail"
FACTS = FileFacts(size=len(CONTENT), mtime_ns=1_765_000_000_123_456_789)
ETAG = f'"{FACTS.mtime_ns:x}-{FACTS.size:x}"'
MODIFIED = "Sat, 06 Dec 2025 05:46:40 GMT"  # 1_765_000_000 s
EARLIER = "Sat, 06 Dec 2025 05:46:39 GMT"


def plan(headers: dict[str, str], method: str = "GET", facts: FileFacts = FACTS) -> FilePlan:
    return plan_file_response(
        method, headers, facts, content_type="video/mp4", cache_control="public, max-age=60"
    )


def body_of(plan: FilePlan, content: bytes = CONTENT) -> bytes:
    return b"".join(
        content[part.offset : part.offset + part.length] if isinstance(part, FileSlice) else part
        for part in plan.body
    )


def test_the_validators_name_the_version_of_the_file() -> None:
    whole = plan({})
    assert (whole.status, body_of(whole)) == (200, CONTENT)
    assert whole.header("ETag") == ETAG
    assert whole.header("Last-Modified") == MODIFIED
    assert whole.header("Cache-Control") == "public, max-age=60"
    assert whole.header("Accept-Ranges") == "bytes"
    assert whole.header("Content-Type") == "video/mp4"
    assert whole.header("Content-Length") == str(len(CONTENT))


def test_head_gets_the_headers_of_get_and_no_body() -> None:
    for headers in ({}, {"range": "bytes=0-9"}, {"range": "bytes=0-1,5-6"}, {"range": "bytes=x"}):
        get, head = plan(headers), plan(headers, "HEAD")
        assert (head.status, head.headers, head.body) == (get.status, get.headers, ())


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        (ETAG, 304),
        (f"W/{ETAG}", 304),  # weak comparison, as RFC 9110 says for GET
        (f'"a", {ETAG}', 304),
        ("*", 304),
        ('"other"', 200),
        (ETAG[:-2] + '"', 200),  # a prefix of ours is another tag
    ],
)
def test_if_none_match_compares_weakly(if_none_match: str, status: int) -> None:
    answer = plan({"if-none-match": if_none_match, "range": "bytes=0-9"})
    expected = 206 if status == 200 else 304
    assert answer.status == expected
    if expected == 304:
        assert answer.body == ()
        assert (answer.header("ETag"), answer.header("Cache-Control")) == (
            ETAG,
            "public, max-age=60",
        )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if-modified-since": MODIFIED}, 304),
        ({"if-modified-since": "Sun, 07 Dec 2025 00:00:00 GMT"}, 304),
        ({"if-modified-since": EARLIER}, 200),
        ({"if-modified-since": "Saturday, 06-Dec-25 05:46:40 GMT"}, 304),  # RFC 850
        ({"if-modified-since": "Sat Dec  6 05:46:40 2025"}, 304),  # asctime
        ({"if-modified-since": "not a date"}, 200),
        # If-None-Match decides alone when present.
        ({"if-none-match": '"other"', "if-modified-since": MODIFIED}, 200),
    ],
)
def test_if_modified_since_answers_304_for_a_file_not_changed_since(
    headers: dict[str, str], status: int
) -> None:
    assert plan(headers).status == status


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if-match": ETAG}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": f"W/{ETAG}"}, 412),  # strong comparison
        ({"if-match": '"other"'}, 412),
        ({"if-unmodified-since": MODIFIED}, 200),
        ({"if-unmodified-since": EARLIER}, 412),
        ({"if-match": ETAG, "if-unmodified-since": EARLIER}, 200),  # If-Match decides alone
    ],
)
def test_if_match_and_if_unmodified_since_refuse_another_version(
    headers: dict[str, str], status: int
) -> None:
    answer = plan(headers)
    assert answer.status == status
    if status == 412:
        assert json.loads(body_of(answer))["error"]["code"] == "precondition_failed"


@pytest.mark.parametrize(
    ("if_range", "status"),
    [(ETAG, 206), (f"W/{ETAG}", 200), ('"other"', 200), (MODIFIED, 206), (EARLIER, 200)],
)
def test_if_range_honours_the_range_only_for_the_same_file(if_range: str, status: int) -> None:
    answer = plan({"range": "bytes=0-9", "if-range": if_range})
    assert (answer.status, body_of(answer)) == (status, CONTENT[:10] if status == 206 else CONTENT)


def test_an_unsatisfiable_range_gets_416_naming_the_size_in_json() -> None:
    answer = plan({"range": f"bytes={FACTS.size}-"})
    assert answer.status == 416
    assert answer.header("Content-Range") == f"bytes */{FACTS.size}"
    assert answer.header("Content-Type") == "application/json"
    error = json.loads(body_of(answer))["error"]
    assert error["code"] == "range_not_satisfiable"
    assert str(FACTS.size) in error["message"]


def test_an_empty_file_is_planned_without_reading() -> None:
    empty = FileFacts(0, FACTS.mtime_ns)
    answer = plan({}, facts=empty)
    assert (answer.status, answer.content_length, answer.header("Content-Length")) == (200, 0, "0")


# --- properties -------------------------------------------------------------------------------

spec = st.one_of(
    st.builds("{}-{}".format, st.integers(0, 1100), st.integers(0, 1100)),
    st.builds("{}-".format, st.integers(0, 1100)),
    st.builds("-{}".format, st.integers(0, 1100)),
)
range_headers = st.one_of(
    st.text(max_size=40),
    st.builds("bytes={}".format, st.lists(spec, min_size=1, max_size=20).map(",".join)),
    st.builds("bytes={}".format, st.text(alphabet="0123456789-, ", max_size=30)),
)


def parts_sent(answer: FilePlan, content: bytes) -> list[tuple[int, int, bytes]]:
    """(first, last, bytes) of each part the plan sends, read back from its wire form."""
    body = body_of(answer, content)
    content_type = answer.header("Content-Type") or ""
    if not content_type.startswith("multipart/byteranges"):
        first, last = map(
            int, (answer.header("Content-Range") or "").split()[1].split("/")[0].split("-")
        )
        return [(first, last, body)]
    boundary = content_type.split("boundary=")[1]
    delimiter = f"\r\n--{boundary}".encode()
    assert body.endswith(delimiter + b"--\r\n")
    sent = []
    for chunk in body.split(delimiter)[1:-1]:
        head, data = chunk.split(b"\r\n\r\n", 1)
        found = re.search(rb"Content-Range: bytes (\d+)-(\d+)/(\d+)", head)
        assert found, head
        assert int(found[3]) == len(content)
        sent.append((int(found[1]), int(found[2]), data))
    return sent


@given(header=range_headers, size=st.integers(0, len(CONTENT)), head=st.booleans())
@example(header="bytes=0-10,5-15,900-", size=1000, head=False)
@example(header="bytes=0-9999999999999999999999", size=1000, head=False)
def test_any_range_header_gets_the_files_bytes_with_the_status_the_parser_decided(
    header: str, size: int, head: bool
) -> None:
    content = CONTENT[:size]
    facts = FileFacts(size, FACTS.mtime_ns)
    answer = plan({"range": header}, "HEAD" if head else "GET", facts)
    decided = parse_range(header, size)
    if head:
        assert answer.body == ()
        answer = plan({"range": header}, "GET", facts)
    assert answer.content_length == int(answer.header("Content-Length") or -1)
    if decided is WHOLE:
        assert (answer.status, body_of(answer, content)) == (200, content)
    elif decided is UNSATISFIABLE:
        assert answer.status == 416
        assert answer.header("Content-Range") == f"bytes */{size}"
    else:
        assert answer.status == 206
        sent = parts_sent(answer, content)
        assert [(first, last) for first, last, _ in sent] == [
            (part.first, part.last) for part in decided
        ]
        for first, last, data in sent:
            assert 0 <= first <= last < size
            assert data == content[first : last + 1]
        spans = sorted((first, last) for first, last, _ in sent)
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(spans))
