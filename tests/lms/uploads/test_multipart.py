"""The file of a streamed multipart body, however the body is cut into chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.errors import Invalid
from lms.uploads.multipart import MultipartFile

BOUNDARY = "----boundary42"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
VIDEO = bytes(range(256)) * 40 + f"--{BOUNDARY[:-1]}".encode()  # looks like a boundary, is not


def form(*parts: tuple[str, str | None, bytes], end: bool = True) -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += data + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


async def chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield data[start:cut]
        start = cut
    yield data[start:]


async def read(file: MultipartFile) -> bytes:
    return b"".join([piece async for piece in file])


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(form(("file", "a.mp4", VIDEO))))))
async def test_the_file_comes_out_whole_however_the_body_is_chunked(cuts: list[int]) -> None:
    body = form(("title", None, b"My talk"), ("file", "a.mp4", VIDEO), ("x", None, b"y"))
    file = MultipartFile(chunks(body, cuts), CONTENT_TYPE)
    assert await read(file) == VIDEO
    assert file.filename == "a.mp4"


async def test_only_the_first_file_field_named_file_is_taken() -> None:
    body = form(("other", "o.bin", b"other"), ("file", "a.mp4", b"A"), ("file", "b.mp4", b"B"))
    file = MultipartFile(chunks(body, []), CONTENT_TYPE)
    assert await read(file) == b"A"
    assert file.filename == "a.mp4"


@pytest.mark.parametrize(
    "body",
    [
        form(("title", None, b"no file here")),
        form(("file", "a.mp4", VIDEO), end=False),  # the client stopped halfway
        b"not multipart at all",
    ],
    ids=["no-file", "truncated", "garbage"],
)
async def test_a_form_without_a_whole_file_is_refused(body: bytes) -> None:
    with pytest.raises(Invalid):
        await read(MultipartFile(chunks(body, [len(body) // 2]), CONTENT_TYPE))


def test_a_body_that_is_not_multipart_form_data_is_refused() -> None:
    for content_type in (None, "application/json", "multipart/form-data"):
        with pytest.raises(Invalid):
            MultipartFile(chunks(b"", []), content_type)
