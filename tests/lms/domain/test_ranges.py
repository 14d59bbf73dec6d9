"""The byte-range rules: one range honoured, everything else whole or unsatisfiable."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.ranges import (
    UNSATISFIABLE,
    WHOLE,
    ByteRange,
    parse_range,
    range_applies,
    unsatisfiable_range,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),  # a suffix longer than the file: all of it
        ("bytes=990-2000", ByteRange(990, 999)),  # an end past the file is cut
        ("BYTES = 1 - 2", ByteRange(1, 2)),
        ("bytes=999-999", ByteRange(999, 999)),
    ],
)
def test_one_satisfiable_range_is_honoured(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [None, "bytes=0-1,5-9", "items=0-5", "bytes=5-1", "bytes=-", "bytes=abc", "0-5", ""],
)
def test_no_range_several_ranges_and_malformed_ones_mean_the_whole_file(
    header: str | None,
) -> None:
    assert parse_range(header, SIZE) is WHOLE


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", 1000),
        ("bytes=5000-6000", 1000),
        ("bytes=-0", 1000),
        ("bytes=0-", 0),
        ("bytes=-1", 0),
    ],
)
def test_a_range_outside_the_file_is_unsatisfiable(header: str, size: int) -> None:
    assert parse_range(header, size) is UNSATISFIABLE
    assert unsatisfiable_range(size) == f"bytes */{size}"


def test_content_range_names_the_bytes_and_the_size() -> None:
    part = ByteRange(10, 19)
    assert (part.length, part.content_range(SIZE)) == (10, "bytes 10-19/1000")


@given(
    size=st.integers(min_value=1, max_value=10_000),
    first=st.integers(min_value=0, max_value=20_000),
    length=st.integers(min_value=1, max_value=20_000),
)
def test_an_honoured_range_always_lies_inside_the_file(size: int, first: int, length: int) -> None:
    answer = parse_range(f"bytes={first}-{first + length - 1}", size)
    if first >= size:
        assert answer is UNSATISFIABLE
    else:
        assert isinstance(answer, ByteRange)
        assert 0 <= answer.first <= answer.last < size
        assert answer.length == min(length, size - first)


def test_if_range_honours_a_range_only_for_the_same_file() -> None:
    etag, date = '"5f-3e8"', "Wed, 25 Nov 2026 10:00:00 GMT"
    assert range_applies(None, etag, date)
    assert range_applies(etag, etag, date)
    assert range_applies(date, etag, date)
    assert not range_applies('"other"', etag, date)
    assert not range_applies(f"W/{etag}", etag, date)  # weak tags never match
    assert not range_applies("Thu, 26 Nov 2026 10:00:00 GMT", etag, date)
