from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lms.domain.outbox import (
    TRANSITIONS,
    IllegalMove,
    RetryPolicy,
    after_failed_attempt,
    check_move,
    check_retry,
    is_permanent_reply,
    retry_delay,
)
from proto.mail import OutboxState


def test_every_state_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(OutboxState)


@pytest.mark.parametrize("state", [OutboxState.SENT, OutboxState.SKIPPED])
def test_a_sent_or_skipped_message_never_moves_again(state: OutboxState) -> None:
    for new in OutboxState:
        with pytest.raises(IllegalMove):
            check_move(1, state, new)


def test_only_a_dead_message_can_be_retried_by_an_admin() -> None:
    check_retry(1, OutboxState.DEAD)
    for state in set(OutboxState) - {OutboxState.DEAD}:
        with pytest.raises(IllegalMove):
            check_retry(1, state)


def test_a_pending_message_is_only_ever_claimed() -> None:
    check_move(1, OutboxState.PENDING, OutboxState.SENDING)
    for new in set(OutboxState) - {OutboxState.SENDING}:
        with pytest.raises(IllegalMove):
            check_move(1, OutboxState.PENDING, new)


def test_backoff_doubles_per_attempt_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(seconds=100), jitter=0.0)
    delays = [retry_delay(policy, n, lambda: 0.7).total_seconds() for n in range(1, 7)]
    assert delays == [10, 20, 40, 80, 100, 100]


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_jitter_keeps_each_delay_between_half_and_all_of_its_backoff(
    attempt: int, draw: float
) -> None:
    policy = RetryPolicy()
    full = min(policy.cap, policy.base * 2 ** min(attempt - 1, 20))
    delay = retry_delay(policy, attempt, lambda: draw)
    assert full * 0.5 - timedelta(microseconds=1) <= delay <= full


def test_jitter_spreads_messages_that_failed_together() -> None:
    rng = random.Random(7)
    delays = {retry_delay(RetryPolicy(), 3, rng.random) for _ in range(100)}
    assert len(delays) > 90


def test_default_policy_outlasts_an_hour_long_smtp_outage() -> None:
    policy = RetryPolicy()
    shortest = sum(
        (retry_delay(policy, n, lambda: 1.0 - 1e-12) for n in range(1, policy.max_attempts)),
        timedelta(0),
    )
    assert shortest > timedelta(hours=2)


def test_a_permanent_failure_is_dead_at_once_and_a_transient_one_only_at_the_limit() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert after_failed_attempt(1, policy, permanent=True) is OutboxState.DEAD
    assert after_failed_attempt(1, policy, permanent=False) is OutboxState.PENDING
    assert after_failed_attempt(2, policy, permanent=False) is OutboxState.PENDING
    assert after_failed_attempt(3, policy, permanent=False) is OutboxState.DEAD


def test_smtp_5xx_replies_are_permanent_and_4xx_transient() -> None:
    assert is_permanent_reply(550)
    assert is_permanent_reply(554)
    assert not is_permanent_reply(421)
    assert not is_permanent_reply(450)
    assert not is_permanent_reply(250)
