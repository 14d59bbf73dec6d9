"""The video file of a multipart/form-data body, streamed: its bytes as they arrive, never the
whole body in memory or in a temporary file (werkzeug's sans-io decoder does the parsing)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, File, MultipartDecoder, NeedData

from lms.errors import Invalid

FIELD = "file"
# A browser form has a handful of fields; many more is not a form we serve.
MAX_PARTS = 16


class MultipartFile:
    """Iterate for the bytes of the file field `file`; `filename` is set once they begin.

    Raises `Invalid` (from iteration) for a body that is not multipart/form-data, is malformed
    or truncated, or has no `file` field. Other fields are read and ignored.
    """

    def __init__(self, body: AsyncIterator[bytes], content_type: str | None) -> None:
        mimetype, options = parse_options_header(content_type or "")
        boundary = options.get("boundary")
        if mimetype != "multipart/form-data" or not boundary:
            raise Invalid(f"send the video as multipart/form-data with a field named {FIELD!r}")
        self._body = body
        self._decoder = MultipartDecoder(boundary.encode(), max_parts=MAX_PARTS)
        self._pieces: deque[bytes] = deque()
        self._in_file = False
        self._ended = False
        self.filename: str | None = None

    def __aiter__(self) -> MultipartFile:
        return self

    async def __anext__(self) -> bytes:
        while not self._pieces:
            if self._ended:
                raise StopAsyncIteration
            # None tells the decoder the body ended, so a truncated body is an error.
            self._decoder.receive_data(await anext(self._body, None))
            self._decode()
        return self._pieces.popleft()

    def _decode(self) -> None:
        while True:
            try:
                event = self._decoder.next_event()
            except (ValueError, RequestEntityTooLarge) as exc:
                raise Invalid(f"the multipart body is malformed: {exc}") from None
            if isinstance(event, NeedData):
                return
            if isinstance(event, File):
                self._in_file = event.name == FIELD and self.filename is None
                if self._in_file:
                    self.filename = event.filename
            elif isinstance(event, Data):
                if self._in_file and event.data:
                    self._pieces.append(event.data)
                self._in_file = self._in_file and event.more_data
            elif isinstance(event, Epilogue):
                self._ended = True
                if self.filename is None:
                    raise Invalid(f"the form has no file field named {FIELD!r}")
                return
            else:  # a Preamble, or a plain Field: not the file
                self._in_file = False
