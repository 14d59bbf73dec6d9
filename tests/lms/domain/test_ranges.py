"""The byte-range rules: RFC 9110 ranges, answered as nginx answers them (see also
test_ranges_against_nginx.py, which asks a real nginx)."""

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lms.domain.ranges import (
    MAX_RANGES,
    UNSATISFIABLE,
    WHOLE,
    ByteRange,
    parse_range,
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
        ("BYTES=1 - 2", ByteRange(1, 2)),
        ("bytes=999-999", ByteRange(999, 999)),
        ("bytes=0-1,5000-6000", ByteRange(0, 1)),  # the unsatisfiable one is dropped
    ],
)
def test_one_satisfiable_range_is_honoured(header: str, expected: ByteRange) -> None:
    assert parse_range(header, SIZE) == (expected,)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-1,5-9", (ByteRange(0, 1), ByteRange(5, 9))),
        ("bytes=500-600, 0-10", (ByteRange(500, 600), ByteRange(0, 10))),  # the order asked
        ("bytes=0-10,5-15", (ByteRange(0, 15),)),  # overlapping: coalesced
        ("bytes=0-9,10-19", (ByteRange(0, 19),)),  # adjacent: coalesced
        ("bytes=20-29,0-4,3-9", (ByteRange(20, 29), ByteRange(0, 9))),
    ],
)
def test_several_ranges_are_honoured_coalesced_in_the_order_asked(
    header: str, expected: tuple[ByteRange, ...]
) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "items=0-5",
        "0-5",
        "",
        "bytes=",
        " bytes = 0-9",  # nginx compares the first six bytes with "bytes="
        "bytes=0-,0-",  # asks for more bytes than the file has: amplification
        "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES + 1)),
        "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES + 1)) + ",x",
    ],
)
def test_no_range_another_unit_or_too_many_ranges_mean_the_whole_file(
    header: str | None,
) -> None:
    assert parse_range(header, SIZE) is WHOLE


def test_up_to_the_cap_ranges_are_honoured() -> None:
    header = "bytes=" + ",".join(f"{i * 10}-{i * 10}" for i in range(MAX_RANGES))
    assert len(parse_range(header, SIZE)) == MAX_RANGES  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", 1000),
        ("bytes=5000-6000", 1000),
        ("bytes=-0", 1000),
        ("bytes=5-2", 1000),
        ("bytes=abc", 1000),
        ("bytes=-", 1000),
        ("bytes=--5", 1000),
        ("bytes=0-10,,20-30", 1000),
        ("bytes=0-10,", 1000),
        ("bytes=0-9999999999999999999999", 1000),  # past off_t: nginx refuses
        ("bytes=9223372036854775808-", 1000),
        ("bytes=\u00b2-5", 1000),  # a digit to str.isdigit, not to HTTP
        ("bytes=0\t-1", 1000),  # spaces around numbers, not tabs, as nginx
        ("bytes=5-", 0),
    ],
)
def test_a_malformed_or_unsatisfiable_range_is_refused(header: str, size: int) -> None:
    assert parse_range(header, size) is UNSATISFIABLE
    assert unsatisfiable_range(size) == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=-1", "bytes=0-5"])
def test_an_empty_file_is_sent_whole_for_a_range_from_its_start(header: str) -> None:
    assert parse_range(header, 0) is WHOLE


def test_content_range_names_the_bytes_and_the_size() -> None:
    part = ByteRange(10, 19)
    assert (part.length, part.content_range(SIZE)) == (10, "bytes 10-19/1000")


# --- properties -------------------------------------------------------------------------------

spaces = st.sampled_from(["", " ", "  "])
number = st.integers(min_value=0, max_value=3000)


@st.composite
def specs(draw: st.DrawFn) -> tuple[str, tuple[int, int]]:
    """A `first-last`, `first-` or `-suffix` spec with optional spaces, and the half-open span
    of a SIZE-byte file it selects (empty when it selects nothing)."""
    kind = draw(st.sampled_from(["closed", "open", "suffix"]))
    a, b = draw(spaces), draw(spaces)
    if kind == "suffix":
        suffix = draw(number)
        return f"{a}-{suffix}{b}", (max(SIZE - suffix, 0), SIZE)
    first = draw(number)
    if kind == "open":
        return f"{a}{first}{b}-{draw(spaces)}", (first, SIZE)
    last = draw(number)
    return f"{a}{first}{b}-{draw(spaces)}{last}", (first, min(last + 1, SIZE))


@given(st.lists(specs(), min_size=1, max_size=MAX_RANGES + 3))
def test_any_list_of_specs_selects_exactly_the_bytes_they_name(
    listed: list[tuple[str, tuple[int, int]]],
) -> None:
    answer = parse_range("bytes=" + ",".join(spec for spec, _ in listed), SIZE)
    spans = [(first, end) for _, (first, end) in listed if first < end]
    if not spans:
        assert answer is UNSATISFIABLE
    elif len(spans) > MAX_RANGES or sum(end - first for first, end in spans) > SIZE:
        assert answer is WHOLE
    else:
        assert isinstance(answer, tuple)
        covered = {offset for part in answer for offset in range(part.first, part.last + 1)}
        assert covered == {offset for first, end in spans for offset in range(first, end)}
        ordered = sorted(answer, key=lambda part: part.first)
        assert all(a.last + 1 < b.first for a, b in itertools.pairwise(ordered))
        # Each part is where the first spec it holds was asked.
        first_asked = [
            min(i for i, (first, end) in enumerate(spans) if part.first <= first <= part.last)
            for part in answer
        ]
        assert first_asked == sorted(first_asked)


@given(header=st.text(max_size=60), size=st.integers(min_value=0, max_value=5000))
@example(header="bytes=0-9999999999999999999999", size=10)
@example(header="bytes=1-0,2-3", size=10)
def test_any_header_gets_whole_refused_or_ranges_inside_the_file(header: str, size: int) -> None:
    assert_whole_refused_or_inside(header, size)


@given(header=st.text(alphabet="bytes=0123456789-, \t", max_size=40))
def test_any_header_of_range_characters_gets_whole_refused_or_ranges_inside_the_file(
    header: str,
) -> None:
    assert_whole_refused_or_inside(header, SIZE)


def assert_whole_refused_or_inside(header: str, size: int) -> None:
    answer = parse_range(header, size)
    if isinstance(answer, tuple):
        assert 1 <= len(answer) <= MAX_RANGES
        assert all(0 <= part.first <= part.last < size for part in answer)
        assert sum(part.length for part in answer) <= size
