"""Waiting for something another process or task does, the way a client would: ask again until
the answer is the one expected, within a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


async def eventually(
    ask: Callable[[], Awaitable[T]],
    expected: Callable[[T], bool],
    *,
    within: float = 30.0,
    interval: float = 0.05,
) -> T:
    """The first answer of `ask()` that is `expected`; TooSlowError after `within` seconds."""
    with trio.fail_after(within):
        while True:
            answer = await ask()
            if expected(answer):
                return answer
            await trio.sleep(interval)
