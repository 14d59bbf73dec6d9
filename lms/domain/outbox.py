"""The outbox's rules: which moves a message may make, and when a failed one is tried again. Pure.

Theory of operation
-------------------
A message is written `pending` with the change that causes it. A mailer claims it (`sending`,
under a lease), hands it to the transport and completes it, fenced on its lease id:

    pending -> sending   a mailer claims it (its `due_at` has come)
    sending -> sending   another mailer claims it after the holder's lease ran out (a killed
                         node); the message may then go out twice, with one Message-ID
    sending -> sent      the server accepted it
    sending -> skipped   the user opted out of its kind before it was sent
    sending -> pending   a transient failure (connection refused, 4xx) with attempts left, due
                         again after a backoff; or the mailer stopped before sending it
    sending -> dead      a permanent failure (5xx for the address), or the last attempt failed
    dead    -> pending   an admin retries it, with fresh attempts

`TRANSITIONS` is the one statement of these rules; the store checks each change against it.

Backoff is exponential with jitter (`retry_delay`): attempt n waits base * 2**(n-1), capped, and
then a random fraction of that in [1 - jitter, 1]. The jitter spreads the retries of many
messages that failed together (an SMTP outage) so they do not all return at the same instant.
With the defaults a message is tried for about four hours (between two and four) before it is
dead, so an SMTP server down for an hour loses nothing and needs nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from proto.mail import OutboxState

TRANSITIONS: Mapping[OutboxState, frozenset[OutboxState]] = {
    OutboxState.PENDING: frozenset({OutboxState.SENDING}),
    OutboxState.SENDING: frozenset(
        {
            OutboxState.SENDING,
            OutboxState.SENT,
            OutboxState.SKIPPED,
            OutboxState.PENDING,
            OutboxState.DEAD,
        }
    ),
    OutboxState.SENT: frozenset(),
    OutboxState.SKIPPED: frozenset(),
    OutboxState.DEAD: frozenset({OutboxState.PENDING}),
}

# A person may send a message back to the queue only once the mailers gave up on it.
RETRYABLE = frozenset({OutboxState.DEAD})


class IllegalMove(Exception):
    """A change the transition table does not allow; nothing was written."""

    def __init__(self, message_id: int, old: OutboxState, new: OutboxState) -> None:
        super().__init__(f"mail {message_id} is {old}; it cannot become {new}")
        self.old = old
        self.new = new


def check_move(message_id: int, old: OutboxState, new: OutboxState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalMove(message_id, old, new)


def check_retry(message_id: int, state: OutboxState) -> None:
    if state not in RETRYABLE:
        raise IllegalMove(message_id, state, OutboxState.PENDING)
    check_move(message_id, state, OutboxState.PENDING)


class DeliveryFailed(Exception):
    """A transport could not deliver a message. `permanent` when trying again cannot help (the
    server refused the address with a 5xx); otherwise (connection refused, timeout, 4xx) the
    message is tried again later."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def is_permanent_reply(code: int) -> bool:
    """SMTP replies 5yz are permanent negative completions (RFC 5321 4.2.1); 4yz are transient."""
    return 500 <= code <= 599


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base: timedelta = timedelta(minutes=2)
    cap: timedelta = timedelta(hours=2)
    jitter: float = 0.5  # a retry waits between (1 - jitter) and 1 times its backoff

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("base must be positive and no more than cap")


def retry_delay(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> timedelta:
    """How long after failed attempt `attempt` (1 for the first) the message is due again.
    `random` returns a float in [0, 1), as `random.Random().random` does."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # In float seconds: a timedelta times 2**n overflows long before n is large.
    steps = min(attempt - 1, 1000)
    backoff = min(policy.cap.total_seconds(), policy.base.total_seconds() * 2.0**steps)
    return timedelta(seconds=backoff * (1.0 - policy.jitter * random()))


def after_failed_attempt(attempt: int, policy: RetryPolicy, *, permanent: bool) -> OutboxState:
    """Where a message goes when attempt `attempt` failed: pending again while attempts are left
    and another attempt could succeed, else dead."""
    if permanent or attempt >= policy.max_attempts:
        return OutboxState.DEAD
    return OutboxState.PENDING
