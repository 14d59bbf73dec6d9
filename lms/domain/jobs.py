"""Which moves a job may make between states, and what a state means to a person.

`TRANSITIONS` is the one statement of the rules; the store checks every change against it
(`check_move`), so an illegal move raises instead of being written.

    queued    -> running     a worker claims it
    queued    -> cancelled   cancelled, or replaced by a newer upload
    running   -> done        the worker finished; its output is published
    running   -> failed      bad input; or a crash or lost lease with no attempts left
    running   -> queued      a crash or lost lease with attempts left, or the worker stopped
    running   -> cancelled   cancelled, or replaced (its worker is stopped)
    failed    -> queued      retried by a person, with fresh attempts
    cancelled -> queued      retried by a person, with fresh attempts

A job queued again after a crash is claimed only once its `retry_delay` has passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from proto.jobs import JobState, JobStatus

TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}

# A person may send a finished job back to the queue unless it succeeded. (RUNNING -> QUEUED is
# the queue's own move, for an attempt that failed, not something to ask for.)
RETRYABLE = frozenset(
    state
    for state in JobState
    if JobState.QUEUED in TRANSITIONS[state] and state not in (JobState.RUNNING, JobState.QUEUED)
)


class IllegalMove(Exception):
    """A change the transition table does not allow; nothing was written."""

    def __init__(self, job_id: int, old: JobState, new: JobState) -> None:
        super().__init__(f"job {job_id} is {old}; it cannot become {new}")
        self.old = old
        self.new = new


def check_move(job_id: int, old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalMove(job_id, old, new)


def check_retry(job_id: int, state: JobState) -> None:
    if state not in RETRYABLE:
        raise IllegalMove(job_id, state, JobState.QUEUED)
    check_move(job_id, state, JobState.QUEUED)


def after_failed_attempt(attempts: int, max_attempts: int, *, retryable: bool) -> JobState:
    """Where a running job goes when its attempt fails: back to the queue while attempts are
    left and another attempt could succeed (a crash, a lost worker), else failed for good."""
    return JobState.QUEUED if retryable and attempts < max_attempts else JobState.FAILED


# A crash's cause (a full volume, a short memory) needs time to clear; doubling the wait spreads
# the attempts a job has over minutes rather than seconds.
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 600.0


def retry_delay(attempts: int) -> float:
    """Seconds a job waits, after its `attempts`-th attempt crashed, before it may be claimed."""
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))


def status_of(state: JobState, stage: str | None) -> JobStatus:
    """The status people see: a running job is probing until its worker starts transcoding."""
    if state is JobState.RUNNING:
        return JobStatus.PROBING if stage in (None, "probing") else JobStatus.TRANSCODING
    return {
        JobState.QUEUED: JobStatus.QUEUED,
        JobState.DONE: JobStatus.READY,
        JobState.FAILED: JobStatus.FAILED,
        JobState.CANCELLED: JobStatus.CANCELLED,
    }[state]
