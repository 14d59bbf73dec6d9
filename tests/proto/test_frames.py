"""The WebSocket frames' wire format: tagged JSON objects, strict parsing, flat batches."""

from __future__ import annotations

import msgspec
import pytest

from proto.frames import (
    Announcement,
    Batch,
    Heartbeat,
    ServerPing,
    Welcome,
    batch,
    decode_client,
    decode_server,
    encode,
)


def test_client_frames_are_parsed_strictly_by_type() -> None:
    frame = decode_client('{"type":"progress","id":3,"update":{"content_id":9,"position":12.5}}')
    assert isinstance(frame, Heartbeat)
    assert (frame.id, frame.update.content_id, frame.update.position) == (3, 9, 12.5)
    for bad in (
        '{"type":"teleport"}',
        '{"type":"ping","t":1,"extra":true}',
        '{"type":"auth"}',
        '{"type":"announcement","text":""}',
        "[]",
    ):
        with pytest.raises(msgspec.ValidationError):
            decode_client(bad)
    with pytest.raises(msgspec.DecodeError):
        decode_client("{not json")


def test_a_batch_of_batches_is_one_flat_batch_in_order() -> None:
    ping = encode(ServerPing(1.0))
    tick = batch([encode(ServerPing(2.0)), encode(ServerPing(3.0))])
    welcome = encode(Welcome(1, 5, "a/1", 20.0))
    sent = decode_server(batch([ping, tick, welcome]))
    assert isinstance(sent, Batch)
    assert [type(f).__name__ for f in sent.frames] == ["ServerPing"] * 3 + ["Welcome"]
    assert [f.t for f in sent.frames[:3]] == [1.0, 2.0, 3.0]  # type: ignore[union-attr]
    assert batch([ping]) == ping


def test_server_frames_leave_out_defaults_but_keep_the_version() -> None:
    text = encode(Welcome(1, 5, "a/1", 20.0))
    assert msgspec.json.decode(text) == {
        "type": "welcome",
        "v": 1,
        "user_id": 5,
        "conn": "a/1",
        "keepalive": 20.0,
    }
    room_event = encode(Announcement(1, "x", 2, "T", "hi", 0.0, epoch="a-1", seq=4))
    assert msgspec.json.decode(room_event)["seq"] == 4
