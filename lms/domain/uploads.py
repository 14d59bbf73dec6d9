"""Which moves an upload may make: bytes arrive until it is complete, or it is terminated."""

from __future__ import annotations

from collections.abc import Mapping

from proto.uploads import UploadState

TRANSITIONS: Mapping[UploadState, frozenset[UploadState]] = {
    UploadState.RECEIVING: frozenset({UploadState.COMPLETE, UploadState.TERMINATED}),
    # A complete upload is a job's source: it is not terminated under it.
    UploadState.COMPLETE: frozenset(),
    UploadState.TERMINATED: frozenset(),
}


class IllegalUploadMove(Exception):
    def __init__(self, old: UploadState, new: UploadState) -> None:
        super().__init__(f"the upload is {old}; it cannot become {new}")
        self.old = old
        self.new = new


def check_move(old: UploadState, new: UploadState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalUploadMove(old, new)
