"""The job state table: every legal move allowed, every other one refused."""

import itertools

import pytest

from lms.domain.jobs import (
    RETRYABLE,
    TRANSITIONS,
    IllegalMove,
    after_failed_attempt,
    check_move,
    check_retry,
    retry_delay,
    status_of,
)
from proto.jobs import JobState, JobStatus

ALL_PAIRS = list(itertools.product(JobState, JobState))


@pytest.mark.parametrize(("old", "new"), ALL_PAIRS)
def test_a_move_is_allowed_exactly_when_the_table_lists_it(old: JobState, new: JobState) -> None:
    if new in TRANSITIONS[old]:
        check_move(7, old, new)
    else:
        with pytest.raises(IllegalMove, match=f"job 7 is {old}; it cannot become {new}"):
            check_move(7, old, new)


def test_the_table_covers_every_state_and_done_is_final() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert TRANSITIONS[JobState.DONE] == frozenset()
    # Every state is reachable from queued.
    seen, frontier = {JobState.QUEUED}, [JobState.QUEUED]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(JobState)


def test_only_failed_and_cancelled_jobs_may_be_retried() -> None:
    assert {JobState.FAILED, JobState.CANCELLED} == RETRYABLE
    for state in JobState:
        if state in RETRYABLE:
            check_retry(1, state)
        else:
            with pytest.raises(IllegalMove):
                check_retry(1, state)


@pytest.mark.parametrize(
    ("attempts", "max_attempts", "retryable", "expected"),
    [
        (1, 3, True, JobState.QUEUED),
        (2, 3, True, JobState.QUEUED),
        (3, 3, True, JobState.FAILED),
        (1, 3, False, JobState.FAILED),
        (1, 1, True, JobState.FAILED),
    ],
)
def test_a_failed_attempt_is_retried_only_while_attempts_are_left_and_it_could_succeed(
    attempts: int, max_attempts: int, retryable: bool, expected: JobState
) -> None:
    assert after_failed_attempt(attempts, max_attempts, retryable=retryable) is expected


def test_a_crashed_job_waits_longer_after_each_crash_up_to_ten_minutes() -> None:
    assert [retry_delay(n) for n in range(1, 5)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(30) == retry_delay(1000) == 600.0


@pytest.mark.parametrize(
    ("state", "stage", "status"),
    [
        (JobState.QUEUED, None, JobStatus.QUEUED),
        (JobState.RUNNING, None, JobStatus.PROBING),
        (JobState.RUNNING, "probing", JobStatus.PROBING),
        (JobState.RUNNING, "transcoding", JobStatus.TRANSCODING),
        (JobState.RUNNING, "packaging", JobStatus.TRANSCODING),
        (JobState.DONE, None, JobStatus.READY),
        (JobState.FAILED, None, JobStatus.FAILED),
        (JobState.CANCELLED, None, JobStatus.CANCELLED),
    ],
)
def test_people_see_a_running_job_as_probing_then_transcoding(
    state: JobState, stage: str | None, status: JobStatus
) -> None:
    assert status_of(state, stage) is status
