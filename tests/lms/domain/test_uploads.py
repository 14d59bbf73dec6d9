"""The upload state table: bytes arrive until the upload completes or is terminated."""

import itertools

import pytest

from lms.domain.uploads import TRANSITIONS, IllegalUploadMove, check_move
from proto.uploads import UploadState


@pytest.mark.parametrize(("old", "new"), list(itertools.product(UploadState, UploadState)))
def test_a_move_is_allowed_exactly_when_the_table_lists_it(
    old: UploadState, new: UploadState
) -> None:
    if new in TRANSITIONS[old]:
        check_move(old, new)
    else:
        with pytest.raises(IllegalUploadMove):
            check_move(old, new)


def test_complete_and_terminated_are_final() -> None:
    assert TRANSITIONS[UploadState.COMPLETE] == frozenset()
    assert TRANSITIONS[UploadState.TERMINATED] == frozenset()
