"""The one-shot answer slot an ask carries to the actor.

An ask has two ends. The asker parks on an `Answer` (see `Address.ask`); the actor holds the
`Reply`, which points at that answer and settles it exactly once, with `send` or `fail`,
waking the asker. An unsettled reply that is garbage-collected settles its answer with
`ActorStopped`, so an actor that forgets a request, or returns without answering it, wakes the
asker at once instead of leaving it to its timeout. That is why the asker holds only the
answer, never the reply: the actor must be the reply's last owner.

A parked task and a slot rather than a memory channel: an ask is the hottest path in the node
(every progress heartbeat is one), and a channel's three objects and their bookkeeping were
a fifth of the CPU an ask cost. For the same reason the wait's timeout is not a cancel scope
but an entry in the run's ask deadlines (deadlines.py), which settles the answer with
`AskTimeout`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Generic, TypeVar

import outcome
import trio

from .deadlines import Deadlines, expire_at
from .errors import ActorStopped, AskTimeout, ReplyAlreadySent

R = TypeVar("R")


class Answer(Generic[R]):
    """The asker's end: where the answer lands, and the asker while it waits for it."""

    __slots__ = ("_asker", "_deadlines", "_name", "_result", "_settled", "_timeout")

    def __init__(self, name: str, timeout: float) -> None:
        self._name = name
        self._timeout = timeout
        self._settled = False
        self._result: outcome.Outcome[R] | None = None  # settled before the asker waited
        self._asker: trio.lowlevel.Task | None = None
        self._deadlines: Deadlines | None = None  # where it waits to time out

    @property
    def settled(self) -> bool:
        return self._settled

    async def wait(self, deadline: float) -> R:
        """Wait for the answer and return it (or raise what the actor failed it with);
        `AskTimeout` at `deadline`. Called once, by the asker; a cancelled wait has taken
        nothing."""
        if self._result is not None:
            return self._result.unwrap()
        self._asker = trio.lowlevel.current_task()
        if deadline != math.inf:  # an entry that never comes due would stay forever
            self._deadlines = expire_at(deadline, self._timeout, self)

        value: R = await trio.lowlevel.wait_task_rescheduled(self._abort)
        return value

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        # The asker was cancelled while it waited.
        self._asker = None
        self._forget_deadline()
        return trio.lowlevel.Abort.SUCCEEDED

    def settle(self, result: outcome.Outcome[R]) -> None:
        """Put the answer in and wake the asker, if it still waits; later answers (the
        runtime's after the actor's, a timeout after either) are ignored."""
        if self._settled:
            return
        self._settled = True
        self._forget_deadline()
        asker, self._asker = self._asker, None
        if asker is not None:
            trio.lowlevel.reschedule(asker, result)
        else:
            self._result = result

    def _forget_deadline(self) -> None:
        # Nothing waits for it any more: an entry left behind would outlive it by its timeout.
        if self._deadlines is not None:
            self._deadlines.forget(self._timeout, self)
            self._deadlines = None

    def drop(self) -> None:
        """The reply was collected unanswered."""
        dropped = ActorStopped(self._name, "dropped the request without answering")
        self.settle(outcome.Error(dropped))

    def expire(self) -> None:
        """Its deadline passed (see deadlines.py)."""
        self.settle(outcome.Error(AskTimeout(self._name, self._timeout)))


class Reply(Generic[R]):
    """Where an actor puts its answer to one ask. Made by `Address.ask`, not by actors.

    Settling never blocks and never fails because of the asker: if the asker has already left
    (timed out, cancelled), the answer is dropped silently.

    The incarnation that received the ask answers for it: if it crashes before settling, its
    supervisor fails the reply with `ActorStopped`, even when the reply was passed on to
    another actor that would have answered. A reply may be kept to answer later (a writer
    answering after its batch commits) as long as its actor stays up.

    Raises:
      ReplyAlreadySent: from `send` or `fail` when the reply was already settled.
    """

    __slots__ = ("__weakref__", "_answer", "_done", "_token")

    def __init__(self, answer: Answer[R]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._answer = answer
        self._done = False

    @property
    def done(self) -> bool:
        """True once the reply has been settled (by the actor, or by the runtime for it)."""
        return self._done

    def send(self, value: R) -> None:
        """Answer the ask: the asker's `ask()` returns `value`."""
        self._settle(outcome.Value(value))

    def fail(self, error: Exception) -> None:
        """Answer the ask with an error: the asker's `ask()` raises `error`."""
        self._settle(outcome.Error(error))

    def _abandon(self, error: ActorStopped) -> None:
        """Settle with `error` unless already settled; for the runtime, when the actor is gone."""
        if not self._done:
            self._settle(outcome.Error(error))

    def _settle(self, result: outcome.Outcome[R]) -> None:
        if self._done:
            raise ReplyAlreadySent("this ask has already been answered")
        self._done = True
        self._answer.settle(result)

    def __del__(self) -> None:
        # getattr: __del__ also runs when __init__ failed (outside trio) before setting _done.
        if getattr(self, "_done", True):
            return
        # __del__ may run in any thread (cyclic GC) and between any two bytecodes, where touching
        # trio's run queue directly is unsafe; run_sync_soon is the one call made for this.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._answer.drop)

    def __repr__(self) -> str:
        return f"<Reply {'done' if self._done else 'pending'} at {id(self):#x}>"
