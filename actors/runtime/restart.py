"""When to restart a crashed child, and when to stop trying.

Pure bookkeeping, no I/O and no trio: the supervisor passes in `trio.current_time()` and gets back
a delay, so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a supervisor treats a child that crashes.

    Crashes are counted in a sliding window of `within` seconds. The k-th crash inside the window
    waits ``backoff_initial * backoff_factor ** (k - 1)`` seconds, at most `backoff_max`, before
    the restart; crash number ``max_restarts + 1`` inside the window gives up instead. Because
    the backoff follows the count in the window, a child that stays up for `within` seconds
    starts again from `backoff_initial` the next time it crashes.

    Raises:
      ValueError: from the constructor, for a negative count or delay, a window that is not
          positive, a factor below 1, or `backoff_max` below `backoff_initial`.
    """

    max_restarts: int = 5
    within: float = 60.0
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, not {self.max_restarts}")
        if not self.within > 0:
            raise ValueError(f"within must be > 0, not {self.within}")
        if self.backoff_initial < 0:
            raise ValueError(f"backoff_initial must be >= 0, not {self.backoff_initial}")
        if self.backoff_factor < 1:
            raise ValueError(f"backoff_factor must be >= 1, not {self.backoff_factor}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")

    def backoff(self, crashes: int) -> float:
        """The delay before restarting after the `crashes`-th crash in the window (1-based)."""
        try:
            delay = self.backoff_initial * self.backoff_factor ** (crashes - 1)
        except OverflowError:
            return self.backoff_max
        return min(delay, self.backoff_max)


class CrashHistory:
    """The crash times of one child that still fall inside its policy's window."""

    __slots__ = ("_policy", "_times")

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        # A list, not a deque: it holds a handful of times at most, and an empty deque costs
        # ~700 bytes in each of thousands of per-user actors.
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._times)

    def record(self, now: float) -> float | None:
        """Count a crash at time `now`.

        Returns the delay to wait before the restart, or None when this crash is one too many
        and the child must be given up on.
        """
        self._times.append(now)
        self._times = [at for at in self._times if at > now - self._policy.within]
        if len(self._times) > self._policy.max_restarts:
            return None
        return self._policy.backoff(len(self._times))
