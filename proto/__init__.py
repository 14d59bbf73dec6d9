"""Every message that crosses a boundary: REST bodies, WebSocket frames, actor messages, job specs.

Messages are frozen `msgspec.Struct`s declared with `gc=False`: values, which hold only other
values and so can never be part of a reference cycle, need no tracking by the collector. (A node
keeps thousands alive for a few milliseconds: heartbeats waiting for their batch, events
waiting for a room's tick. Tracked, each one counted towards the next collection.) This package
depends on nothing of ours, so anything may import it. `encode`/`decode` are the one way bytes
become messages and back.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

PROTOCOL_VERSION = 1

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """Serialise a message (or any msgspec-encodable value) to JSON bytes."""
    return _encoder.encode(message)


def decode(data: bytes | str, into: type[T]) -> T:
    """Parse JSON into `into`, strictly: no type coercion, unknown fields as the Struct says.

    Raises `msgspec.DecodeError` for malformed JSON and `msgspec.ValidationError` (a subclass)
    for well-formed JSON of the wrong shape; edges tell the two apart (400 vs 422).
    """
    return msgspec.json.decode(data, type=into, strict=True)
