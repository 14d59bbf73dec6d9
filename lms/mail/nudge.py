"""Telling this node's Mailer that a message was just enqueued, so that it goes now rather than
at the Mailer's next poll (seconds later): for mail a person is waiting for, such as a reset
link or a registration's answer."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from actors.runtime import ActorError

# `MailerHandle.nudge` of the node's Mailer.
Nudge = Callable[[], Awaitable[None]]


async def nudge_mailer(nudge: Nudge) -> None:
    """Best effort: the message is durable already, and a Mailer that cannot be told now (it is
    restarting, or stopped) sends it at its next poll, or another node's does."""
    with contextlib.suppress(ActorError):
        await nudge()
