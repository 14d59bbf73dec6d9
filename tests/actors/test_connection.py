"""A connection's send queue: the edge's writer takes what rooms and sessions offer, in order,
and the edge's reader may answer its client directly only when that cannot overtake anything."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.connection import SLOW_CLIENT, Connection, Peer


def connection(capacity: int = 8) -> Connection:
    return Connection(Peer("a/1", 1, "Ada"), capacity)


async def writer(conn: Connection, sent: list[str]) -> None:
    """The edge's writer, sending into `sent`."""
    while True:
        try:
            sent.extend(await conn.next_frames())
        except trio.EndOfChannel:
            return


async def test_the_reader_answers_directly_only_while_the_writer_waits_with_nothing_queued(
    nursery: trio.Nursery,
) -> None:
    conn = connection()
    assert not conn.claim(), "no writer waiting yet: a direct send could overtake its next send"
    nursery.start_soon(writer, conn, [])
    await trio.testing.wait_all_tasks_blocked()
    assert conn.claim()
    assert not conn.claim(), "one claimed send at a time"
    conn.release()
    conn.offer("queued")
    assert not conn.claim(), "a queued frame must go first"


async def test_frames_offered_during_a_direct_send_follow_it_in_order(
    nursery: trio.Nursery,
) -> None:
    conn = connection()
    sent: list[str] = []
    nursery.start_soon(writer, conn, sent)
    await trio.testing.wait_all_tasks_blocked()

    assert conn.claim()
    sent.append("ack")  # the reader's send, which may take a while
    conn.offer("progress 1")
    conn.offer("progress 2")
    await trio.testing.wait_all_tasks_blocked()
    assert sent == ["ack"], "the writer must not send while the reader's send is unfinished"

    conn.release()
    await trio.testing.wait_all_tasks_blocked()
    assert sent == ["ack", "progress 1", "progress 2"]


async def test_a_connection_cut_during_a_direct_send_ends_the_writer_after_it(
    nursery: trio.Nursery,
) -> None:
    conn = connection(capacity=1)
    sent: list[str] = []
    done = trio.Event()

    async def write_then_report() -> None:
        await writer(conn, sent)
        done.set()

    nursery.start_soon(write_then_report)
    await trio.testing.wait_all_tasks_blocked()
    assert conn.claim()
    conn.offer("fits")
    assert not conn.offer("overflows")
    assert conn.close_code == SLOW_CLIENT
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()

    conn.release()
    with trio.fail_after(1):
        await done.wait()
    assert sent == ["fits"]


async def test_a_second_writer_is_refused() -> None:
    conn = connection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, conn, [])
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await conn.next_frames()
        nursery.cancel_scope.cancel()
