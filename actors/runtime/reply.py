"""The one-shot answer slot an ask carries to the actor.

A `Reply` wraps the send side of a memory channel with a buffer of one; the asker holds the
receive side (see `Address.ask`). The actor settles it exactly once, with `send` or `fail`, and
settling closes the channel. An unsettled reply that is garbage-collected also closes it, so an
actor that forgets a request, or returns without answering it, wakes the asker at once with
`ActorStopped` instead of leaving it to its timeout.
"""

from __future__ import annotations

import contextlib
from typing import Generic, TypeVar

import outcome
import trio

from .errors import ActorStopped, ReplyAlreadySent

R = TypeVar("R")


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

    __slots__ = ("__weakref__", "_done", "_send", "_token")

    def __init__(self, send: trio.MemorySendChannel[outcome.Outcome[R]]) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send = send
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
        try:
            self._send.send_nowait(result)
        except trio.BrokenResourceError:
            pass  # the asker gave up waiting; nobody is left to tell
        finally:
            self._send.close()

    def __del__(self) -> None:
        # getattr: __del__ also runs when __init__ failed (outside trio) before setting _done.
        if getattr(self, "_done", True):
            return
        # __del__ may run in any thread (cyclic GC) and between any two bytecodes, where touching
        # trio's run queue directly is unsafe; run_sync_soon is the one call made for this.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._send.close)

    def __repr__(self) -> str:
        return f"<Reply {'done' if self._done else 'pending'} at {id(self):#x}>"
