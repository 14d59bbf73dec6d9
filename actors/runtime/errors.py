"""Errors the actor runtime raises.

Everything a caller of an actor can meet derives from `ActorError`, so the HTTP edge maps the whole
family in one place: `AskTimeout` becomes 504, every other `ActorError` 503. `ReplyAlreadySent`
is not in that family: it is a bug in an actor, not a condition a caller should handle.
"""

from __future__ import annotations


class ActorError(Exception):
    """An actor could not take a message, or could not answer one.

    Attributes:
      name: the name of the actor (its mailbox) concerned.
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"actor {name!r}: {detail}")
        self.name = name


class ActorStopped(ActorError):
    """The actor's mailbox is closed, or the actor stopped without answering an ask.

    When the actor crashed while it held the request, ``__cause__`` is the crash.
    """

    def __init__(self, name: str, detail: str = "mailbox is closed") -> None:
        super().__init__(name, detail)


class RegistryStopped(ActorStopped):
    """A `Registry` that is not running (not started yet, or stopped with the node) was asked
    for an actor: there is none, and none can be started."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "registry is not running")


class MailboxFull(ActorError):
    """`Address.tell_nowait` found the mailbox's buffer full; nothing was sent."""

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(name, f"mailbox is full ({capacity} messages)")
        self.capacity = capacity


class AskTimeout(ActorError):
    """An ask got no answer (or could not even be queued) within its timeout.

    The request may still be handled later; its answer is then dropped.
    """

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(name, f"no answer within {timeout:g}s")
        self.timeout = timeout


class SupervisorGaveUp(ActorError):
    """A supervised child crashed more than its policy allows and is not restarted again.

    Attributes:
      name: the child's name.
      last_error: the exception of its last crash (also the ``__cause__``).
      crashes: how many crashes fell inside the window.
      within: the window, in seconds.
    """

    def __init__(
        self, name: str, last_error: BaseException, *, crashes: int, within: float
    ) -> None:
        detail = f"gave up after {crashes} crashes within {within:g}s: {last_error!r}"
        super().__init__(name, detail)
        self.last_error = last_error
        self.crashes = crashes
        self.within = within
        self.__cause__ = last_error


class ReplyAlreadySent(RuntimeError):
    """An actor answered the same `Reply` twice."""
