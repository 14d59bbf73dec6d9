"""Files that are not good videos, for the tests of what an upload may hold: notes, a photo, an
empty file, a video cut off halfway. Good clips come from `media.synthetic`. Nothing is
downloaded.
"""

from __future__ import annotations

from pathlib import Path

import av

from media.jpeg import POSTER_QUALITY, encode_jpeg
from media.synthetic import marked_picture


def write_text(path: Path) -> Path:
    path.write_text("These are lecture notes, not a video.\n" * 50)
    return path


def write_photo(path: Path) -> Path:
    """A JPEG photo (under whatever name `path` has)."""
    picture = av.VideoFrame.from_ndarray(marked_picture(320, 180)(0, 0.0), format="rgb24")
    path.write_bytes(encode_jpeg(picture, POSTER_QUALITY))
    return path


def write_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncate(source: Path, path: Path, keep: float = 0.5) -> Path:
    """A copy of `source` cut after `keep` of its bytes: an upload that stopped halfway."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
