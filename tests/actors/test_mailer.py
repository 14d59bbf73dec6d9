"""The Mailer against a real PostgreSQL outbox and a real SMTP server (aiosmtpd): every message
delivered once through outages and refusals, the one in flight when a mailer stops sent again
with its Message-ID, and two mailers on one outbox never sending a message twice."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import msgspec
import trio

from actors.mailer import MailerConfig, MailerHandle, Transport
from actors.runtime import Supervisor
from lms.config import Settings
from lms.domain.outbox import RetryPolicy
from lms.mail.eml_dir import EmlDirTransport
from lms.mail.mailer import start_node_mailer
from lms.mail.smtp import SmtpTransport
from lms.mail.smtp_url import parse_smtp_url
from lms.store.bridge import open_bridge
from lms.store.database import Database
from proto.mail import MailKind
from tests.databases import open_database
from tests.outbox_setup import enqueue, message, message_ids, row, states
from tests.polling import eventually
from tests.smtp_server import SmtpServer, running_smtp_server

T = TypeVar("T")

SETTINGS = Settings(
    secret_key="s" * 32, mail_from="LMS <lms@lms.test>", public_url="https://lms.test"
)
# Retries within milliseconds, and enough of them to outlast the tests' outages.
FAST = MailerConfig(
    batch=8,
    poll_seconds=0.05,
    send_timeout=10.0,
    policy=RetryPolicy(
        max_attempts=1000, base=timedelta(milliseconds=20), cap=timedelta(milliseconds=100)
    ),
)


@asynccontextmanager
async def running_mailer(
    db: Database, transport: Transport, config: MailerConfig = FAST
) -> AsyncIterator[MailerHandle]:
    """A node's Mailer under a supervisor; stopped (cancelled) when the block is left."""
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("test")
        await nursery.start(supervisor.run)
        yield await start_node_mailer(supervisor, SETTINGS, db, transport, config)
        nursery.cancel_scope.cancel()


def smtp(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport(parse_smtp_url(server.url))


async def all_sent(db: Database, count: int) -> None:
    await eventually(lambda: states(db), lambda s: s == Counter(sent=count))


def async_value(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def ask() -> T:
        return read()

    return ask


def to(n: int) -> str:
    return f"learner{n}@example.org"


async def test_a_message_arrives_with_its_headers_and_both_parts(database_url: str) -> None:
    with running_smtp_server() as server:
        async with open_database(database_url) as db, running_mailer(db, smtp(server)):
            await enqueue(db, message("welcome:user:1", to="ada@example.org"))
            await all_sent(db, 1)
            expected_id = (await row(db, "welcome:user:1"))["message_id"]
        [received] = server.messages()
    assert received["Message-ID"] == expected_id
    assert received["To"] == "ada@example.org"
    assert received["From"] == "LMS <lms@lms.test>"
    assert received["Date"]
    assert [p.get_content_type() for p in received.iter_parts()] == ["text/plain", "text/html"]


async def test_smtp_refusing_connections_for_a_while_delays_but_never_loses_or_doubles_mail(
    database_url: str,
) -> None:
    server = SmtpServer()  # down: its port refuses connections until started
    try:
        async with open_database(database_url) as db, running_mailer(db, smtp(server)) as mailer:
            await enqueue(db, *(message(f"m{n}", to=to(n)) for n in range(20)))

            async def attempts(conn: asyncpg.Connection) -> list[tuple[str, int]]:
                rows = await conn.fetch("SELECT state, attempts FROM outbox")
                return [(r["state"], r["attempts"]) for r in rows]

            # Every message has failed at least twice and waits for its next attempt.
            await eventually(
                lambda: db.transaction(attempts),
                lambda rows: len(rows) == 20 and all(a >= 2 for _, a in rows),
            )
            assert set((await states(db)).elements()) <= {"pending", "sending"}
            server.start()
            await all_sent(db, 20)
            stats = mailer.statistics()
            ids = await message_ids(db)
        assert server.deliveries() == Counter(ids.values())  # each exactly once
        assert (stats.sent, stats.dead, stats.in_flight) == (20, 0, 0)
        # A claim counts an attempt before it fails, so "attempts >= 2" above proves one failed
        # attempt per message, not two (the second may still be in flight when it is seen).
        assert stats.retried >= 20
    finally:
        server.stop()


async def test_a_permanent_refusal_of_one_address_does_not_hold_up_the_others(
    database_url: str,
) -> None:
    with running_smtp_server(refuse=frozenset({"gone@example.org"})) as server:
        async with open_database(database_url) as db, running_mailer(db, smtp(server)) as mailer:
            await enqueue(
                db,
                message("gone", to="gone@example.org"),
                *(message(f"m{n}", to=to(n)) for n in range(5)),
            )
            await eventually(lambda: states(db), lambda s: s == Counter(sent=5, dead=1))
            dead = await row(db, "gone")
            stats = mailer.statistics()
        assert dead["attempts"] == 1  # a 5xx is not tried again
        assert dead["last_error"].startswith("550 5.1.1")
        assert sorted(m["To"] for m in server.messages()) == sorted(to(n) for n in range(5))
        assert (stats.sent, stats.dead, stats.retried) == (5, 1, 0)


async def test_the_message_in_flight_when_a_mailer_stops_is_sent_again_with_the_same_id(
    database_url: str,
) -> None:
    with running_smtp_server(hold_once=frozenset({"held@example.org"})) as server:
        async with open_database(database_url) as db:
            await enqueue(
                db,
                message("held", to="held@example.org"),
                *(message(f"m{n}", to=to(n)) for n in range(4)),
            )
            async with running_mailer(db, smtp(server)):
                # The server has the held message's data; its sender waits for the answer
                # while the rest of the batch completes.
                await eventually(lambda: trio.to_thread.run_sync(server.held), bool)
                await eventually(lambda: states(db), lambda s: s == Counter(sent=4, sending=1))
                stopping = trio.current_time()
            # The mailer is stopped before it could write the held message's completion, and
            # promptly: a server that does not answer does not hold up a stopping node.
            assert trio.current_time() - stopping < 5.0
            server.release()
            assert await states(db) == Counter(sent=4, pending=1)
            async with running_mailer(db, smtp(server)):
                await all_sent(db, 5)
            ids = await message_ids(db)
    assert server.deliveries() == Counter(ids.values()) + Counter([ids["held@example.org"]])


async def test_two_mailers_on_one_outbox_never_send_a_message_twice(database_url: str) -> None:
    with running_smtp_server() as server:
        async with open_bridge():
            # Two nodes' pools: separate connections, as two machines would have.
            a = await Database.connect(database_url, min_size=1, max_size=4)
            b = await Database.connect(database_url, min_size=1, max_size=4)
            try:
                config = replace(FAST, batch=4)
                async with (
                    running_mailer(a, smtp(server), config) as first,
                    running_mailer(b, smtp(server), config) as second,
                ):
                    await enqueue(a, *(message(f"m{n}", to=to(n)) for n in range(200)))
                    await all_sent(a, 200)
                    shares = (first.statistics().sent, second.statistics().sent)
                ids = await message_ids(a)
            finally:
                await a.close()
                await b.close()
    assert server.deliveries() == Counter(ids.values())
    assert len(ids) == 200
    assert sum(shares) == 200
    assert min(shares) > 0  # both took part


async def test_without_smtp_mail_is_written_as_eml_files(database_url: str, tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    async with open_database(database_url) as db:
        async with running_mailer(db, EmlDirTransport(mail_dir)):
            await enqueue(db, *(message(f"m{n}", to=to(n)) for n in range(3)))
            await all_sent(db, 3)
        ids = await message_ids(db)
    files = sorted(mail_dir.iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3
    read = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]
    assert sorted(m["Message-ID"] for m in read) == sorted(ids.values())


async def test_a_nudge_sends_new_mail_without_waiting_for_the_next_poll(
    database_url: str,
) -> None:
    with running_smtp_server() as server:
        async with open_database(database_url) as db:
            idle = replace(FAST, poll_seconds=3600.0)
            async with running_mailer(db, smtp(server), idle) as mailer:
                # Started with nothing due: it claims nothing, then waits for an hour.
                await eventually(async_value(mailer.statistics), lambda s: s.claims == 1)
                await enqueue(db, message("welcome:user:1"))
                await mailer.nudge()
                with trio.fail_after(10):
                    await all_sent(db, 1)
    assert len(server.messages()) == 1


async def test_a_message_that_cannot_be_rendered_is_dead_with_the_reason(
    database_url: str,
) -> None:
    with running_smtp_server() as server:
        async with open_database(database_url) as db, running_mailer(db, smtp(server)) as mailer:
            broken = msgspec.structs.replace(message("broken"), template="no_such_template")
            await enqueue(db, broken, message("fine"))
            await eventually(lambda: states(db), lambda s: s == Counter(sent=1, dead=1))
            dead = await row(db, "broken")
            assert mailer.statistics().dead == 1
    assert "no_such_template" in dead["last_error"]
    assert len(server.messages()) == 1


async def test_a_reset_token_reaches_the_mail_and_leaves_the_outbox_once_sent(
    database_url: str,
) -> None:
    token = "reset-token-that-only-the-mail-keeps"
    reset = message(
        "reset:1",
        kind=MailKind.PASSWORD_RESET,
        context={"name": "Ada", "token": token, "expires_minutes": 60},
    )
    with running_smtp_server() as server:
        async with open_database(database_url) as db, running_mailer(db, smtp(server)):
            await enqueue(db, reset)
            await all_sent(db, 1)
            sent = await row(db, "reset:1")
        [received] = server.messages()
    text = received.get_body(("plain",)).get_content()
    assert f"https://lms.test/reset-password#token={token}" in text
    assert msgspec.json.decode(sent["context"]) == {"name": "Ada", "expires_minutes": 60}
