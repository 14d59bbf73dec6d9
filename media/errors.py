"""The one error the media pipeline raises on purpose."""

from __future__ import annotations


class MediaError(Exception):
    """The input cannot become a lecture video; `reason` says why, for a person.

    The worker sends `reason` as `Failed.reason` and the CLI prints it, so it names what is wrong
    with the file ("the file is empty"), never an FFmpeg error code.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
