"""Real nodes SIGKILLed mid-send (no clean-up, no release): the message in flight goes out once
more, with its Message-ID, once its lease has run out; nothing is lost and nothing else is sent
twice, whether the next node starts after the kill or was running beside the killed one.

The SMTP server holds one recipient's DATA: the message has reached the server and its node waits
for the answer when it is killed. The server then lets it through, so that copy counts as
delivered, as a real server that had the whole message would deliver it.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest
import trio

from actors.mailer import POLL_SECONDS
from lms.store.database import Database
from proto.mail import OutboxMessage
from tests.databases import open_database
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.outbox_setup import enqueue, message, message_ids, row, states
from tests.polling import eventually
from tests.smtp_server import SmtpServer, running_smtp_server

pytestmark = pytest.mark.e2e

HELD = "held@example.org"
COUNT = 20


def to(n: int) -> str:
    return f"learner{n}@example.org"


def mails() -> list[OutboxMessage]:
    """COUNT messages, the held one third: in the first batch the first node claims."""
    others = [message(f"m{n}", to=to(n)) for n in range(COUNT - 1)]
    return [*others[:2], message("held", to=HELD), *others[2:]]


@asynccontextmanager
async def running_node(
    name: str, tmp_path: Path, database_url: str, server: SmtpServer, lease: int
) -> AsyncIterator[NodeProcess]:
    """`lms serve` on the shared database, sending to `server`; killed if the test leaves it
    running."""
    env = node_env(
        tmp_path / name,
        LMS_NODE_ID=name,
        LMS_DATABASE_URL=database_url,
        LMS_SECRET_KEY=SECRET,
        LMS_SMTP_URL=server.url,
        LMS_MAIL_LEASE_SECONDS=str(lease),
        LMS_TRANSCODE_WORKERS="0",
    )
    node = await start_node(env, tmp_path / f"{name}.log")
    try:
        yield node
    finally:
        if node.process.returncode is None:
            node.process.kill()
            await node.process.wait()


async def held_then_killed(node: NodeProcess, server: SmtpServer, db: Database) -> datetime:
    """Wait until the held message is the only one in flight (its batch's others sent at once
    are completed: each would be a message in flight too), SIGKILL `node` and let the server
    answer. Returns when the dead node's lease on the message runs out (after it, a node's
    next poll takes the message back)."""
    await eventually(lambda: trio.to_thread.run_sync(server.held), lambda held: held == {HELD})
    await eventually(lambda: states(db), lambda s: s["sending"] == 1)
    assert await node.stop(signal.SIGKILL) == -signal.SIGKILL
    server.release()
    # A kill gives nothing back: the message stays the dead node's until its lease runs out.
    in_flight = await row(db, "held")
    assert (in_flight["state"], in_flight["attempts"]) == ("sending", 1)
    return in_flight["lease_until"]


async def assert_only_the_held_message_went_twice(
    db: Database, server: SmtpServer, lapsed: datetime
) -> None:
    ids = await message_ids(db)
    assert len(ids) == COUNT
    # Every message once, and the held one a second time under the same Message-ID.
    assert server.deliveries() == Counter(ids.values()) + Counter([ids[HELD]])
    copies = [m for m in server.messages() if m["To"] == HELD]
    assert [m["Message-ID"] for m in copies] == [ids[HELD]] * 2
    resent = await row(db, "held")
    assert resent["attempts"] == 2
    assert resent["sent_at"] > lapsed  # taken back only once the lease had run out


async def test_a_node_killed_mid_send_loses_nothing_and_resends_only_the_message_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    lease = 6
    with running_smtp_server(hold_once=frozenset({HELD})) as server:
        async with open_database(database_url) as db:
            await enqueue(db, *mails())
            async with running_node("a", tmp_path, database_url, server, lease) as a:
                lapsed = await held_then_killed(a, server, db)
            async with running_node("b", tmp_path, database_url, server, lease) as b:
                await eventually(
                    lambda: states(db),
                    lambda s: s == Counter(sent=COUNT),
                    within=lease + POLL_SECONDS + 30,
                )
                assert await b.stop() == 0
            await assert_only_the_held_message_went_twice(db, server, lapsed)


async def test_a_node_beside_a_killed_one_sends_nothing_twice_but_the_message_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    # Long enough for the second node to start and send the rest while the first still holds
    # the message (its send is cut off at two thirds of the lease).
    lease = 15
    with running_smtp_server(hold_once=frozenset({HELD})) as server:
        async with open_database(database_url) as db:
            await enqueue(db, *mails())
            async with running_node("a", tmp_path, database_url, server, lease) as a:
                await eventually(
                    lambda: trio.to_thread.run_sync(server.held), lambda held: held == {HELD}
                )
                async with running_node("b", tmp_path, database_url, server, lease) as b:
                    # The first node is stuck on its batch: the second sends all the rest, and
                    # leaves the held message to the node whose lease holds it.
                    await eventually(
                        lambda: states(db), lambda s: s == Counter(sent=COUNT - 1, sending=1)
                    )
                    ids = await message_ids(db)
                    assert server.deliveries() == Counter(ids.values())
                    lapsed = await held_then_killed(a, server, db)
                    await eventually(
                        lambda: states(db),
                        lambda s: s == Counter(sent=COUNT),
                        within=lease + POLL_SECONDS + 30,
                    )
                    assert await b.stop() == 0
            await assert_only_the_held_message_went_twice(db, server, lapsed)
