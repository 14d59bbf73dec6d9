"""The top-level boxes of an MP4/MOV (ISO base media) file, read from their headers alone.

Each box starts with a 32-bit size and a 4-letter type (a size of 1 means a 64-bit size follows,
0 means "to the end of the file"), so walking the top level costs one small read per box and
tells two things no decoder reports cheaply: whether the file stops inside a box (truncated
upload) and whether `moov` comes before `mdat` (faststart, playable while downloading).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


@dataclass(frozen=True)
class Box:
    kind: str  # "ftyp", "moov", "mdat", ...
    offset: int
    size: int  # as declared, header included

    @property
    def end(self) -> int:
        return self.offset + self.size


def looks_like_isobmff(head: bytes) -> bool:
    """Whether the first bytes of a file are an ISO base media `ftyp` box."""
    return len(head) >= 8 and head[4:8] == b"ftyp"


def top_level_boxes(path: Path) -> list[Box]:
    """Every top-level box, in file order; the last one may end past the end of the file."""
    boxes = []
    file_size = path.stat().st_size
    with path.open("rb") as file:
        offset = 0
        while offset + _HEADER.size <= file_size:
            file.seek(offset)
            size, kind = _HEADER.unpack(file.read(_HEADER.size))
            if size == 1:
                (size,) = _LARGE_SIZE.unpack(file.read(_LARGE_SIZE.size))
            elif size == 0:
                size = file_size - offset
            if size < _HEADER.size:  # a corrupt header: nothing after it can be trusted
                boxes.append(Box(kind.decode("latin-1"), offset, file_size - offset + 1))
                break
            boxes.append(Box(kind.decode("latin-1"), offset, size))
            offset += size
    return boxes


def is_truncated(path: Path) -> bool:
    """Whether the file ends before its last top-level box does."""
    boxes = top_level_boxes(path)
    return bool(boxes) and boxes[-1].end > path.stat().st_size
