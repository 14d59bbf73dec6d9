"""What every message type promises, whichever module declares it."""

from __future__ import annotations

import gc
import importlib
import pkgutil

import msgspec

import proto
from proto.frames import decode_client


def _message_types() -> list[type[msgspec.Struct]]:
    found = []
    for module in pkgutil.iter_modules(proto.__path__):
        namespace = vars(importlib.import_module(f"proto.{module.name}"))
        found += [
            value
            for value in namespace.values()
            if isinstance(value, type)
            and issubclass(value, msgspec.Struct)
            and value.__module__.startswith("proto")
        ]
    return found


def test_every_message_is_a_frozen_value_the_collector_does_not_track() -> None:
    types = _message_types()
    assert len(types) > 50
    for message_type in types:
        config = message_type.__struct_config__
        assert config.frozen, message_type
        assert not config.gc, message_type


def test_a_decoded_heartbeat_is_not_tracked_by_the_collector() -> None:
    frame = decode_client('{"type":"progress","update":{"content_id":9,"played":[[0,5]]}}')
    assert not gc.is_tracked(frame)
    assert not gc.is_tracked(frame.update)
