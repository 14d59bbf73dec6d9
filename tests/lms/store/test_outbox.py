"""The outbox on a real PostgreSQL: idempotent writes, claims shared by many mailers, leases,
fencing, retries, opt-outs and the admin's view."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import pytest
import trio

from lms.domain.outbox import IllegalMove
from lms.store import outbox as store
from lms.store.database import Database
from proto.mail import ClaimedMail, MailKind, OutboxMessage, OutboxState
from tests.databases import open_database
from tests.outbox_setup import MAX_ATTEMPTS, claim, enqueue, insert_user, message, row
from tests.polling import eventually


async def test_a_second_message_with_the_same_key_is_not_written(database_url: str) -> None:
    async with open_database(database_url) as db:
        first = await db.transaction(store.enqueue, message("reminder:user:1:2026-W49"))
        again = await db.transaction(
            store.enqueue, message("reminder:user:1:2026-W49", to="other@example.org")
        )
        assert (first, again) == (True, False)
        assert (await row(db, "reminder:user:1:2026-W49"))["to_address"] == "ada@example.org"


async def test_mail_written_with_a_change_that_rolls_back_is_never_sent(database_url: str) -> None:
    class Rollback(Exception):
        pass

    async def change_then_fail(conn: asyncpg.Connection) -> None:
        await store.enqueue(conn, message("welcome:user:9"))
        raise Rollback

    async with open_database(database_url) as db:
        with pytest.raises(Rollback):
            await db.transaction(change_then_fail)
        assert await claim(db) == []


async def test_each_message_gets_a_message_id_kept_across_attempts(database_url: str) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, message("a"), message("b"))
        first = await claim(db, lease=0.05)
        assert len({m.message_id for m in first}) == 2
        assert all(m.message_id.startswith("<") and m.message_id.endswith(">") for m in first)
        again = await eventually(lambda: claim(db), lambda claimed: len(claimed) == 2)
        assert {m.message_id for m in again} == {m.message_id for m in first}
        assert {m.attempt for m in again} == {2}


async def test_many_mailers_claiming_at_once_never_take_the_same_message(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, *(message(f"m{n}") for n in range(60)))
        taken: list[ClaimedMail] = []

        async def mailer() -> None:
            while claimed := await claim(db, limit=7):
                taken.extend(claimed)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(mailer)
        assert len(taken) == 60
        assert len({m.id for m in taken}) == 60


async def test_a_message_is_not_claimed_before_it_is_due(database_url: str) -> None:
    async def later(conn: asyncpg.Connection) -> None:
        await store.enqueue(
            conn, message("later"), due_at=await conn.fetchval("SELECT now() + interval '1 hour'")
        )

    async with open_database(database_url) as db:
        await db.transaction(later)
        assert await claim(db) == []


async def test_a_mailer_whose_lease_ran_out_is_fenced_out(database_url: str) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, message("m"))
        [stalled] = await claim(db, lease=0.05)
        [taker] = await eventually(lambda: claim(db), bool)
        assert taker.id == stalled.id
        assert taker.lease_id != stalled.lease_id
        assert not await db.transaction(store.mark_sent, stalled.id, stalled.lease_id)
        assert not await db.transaction(
            store.mark_failed,
            stalled.id,
            stalled.lease_id,
            new=OutboxState.DEAD,
            error="x",
            retry_in=timedelta(0),
        )
        assert await db.transaction(store.mark_sent, taker.id, taker.lease_id)
        sent = await row(db, "m")
        assert (sent["state"], sent["attempts"]) == ("sent", 2)
        assert sent["sent_at"] is not None


async def test_a_failed_attempt_waits_for_its_retry_and_keeps_its_error(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, message("m"))
        [mail] = await claim(db)
        assert await db.transaction(
            store.mark_failed,
            mail.id,
            mail.lease_id,
            new=OutboxState.PENDING,
            error="connection refused",
            retry_in=timedelta(milliseconds=300),
        )
        failed = await row(db, "m")
        assert (failed["state"], failed["last_error"]) == ("pending", "connection refused")
        assert await claim(db) == []
        [again] = await eventually(lambda: claim(db), bool)
        assert again.attempt == 2


async def test_a_message_whose_mailer_dies_on_its_last_attempt_is_dead(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, message("poison"))
        for _ in range(MAX_ATTEMPTS):
            await eventually(lambda: claim(db, lease=0.05), bool)
        await eventually(lambda: row(db, "poison"), lambda r: r["lease_until"] is not None)

        async def dead() -> str:
            await claim(db)
            return (await row(db, "poison"))["state"]

        assert await eventually(dead, lambda state: state == "dead") == "dead"
        assert (await row(db, "poison"))["last_error"] == store.LEASE_EXPIRED


async def test_a_stopping_mailer_gives_its_messages_back_uncounted(database_url: str) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, message("a"), message("b"))
        claimed = await claim(db)
        lease_id = claimed[0].lease_id
        assert await db.transaction(store.release, [m.id for m in claimed], lease_id) == 2
        again = await claim(db)
        assert sorted(m.id for m in again) == sorted(m.id for m in claimed)
        assert {m.attempt for m in again} == {1}
        # Released under the old lease: nothing of the new holders' is touched.
        assert await db.transaction(store.release, [m.id for m in claimed], lease_id) == 0


async def test_mail_a_user_opted_out_of_is_skipped_but_security_mail_is_sent(
    database_url: str,
) -> None:
    async def wants_none(conn: asyncpg.Connection, user_id: int, kind: MailKind) -> bool:
        return False

    async with open_database(database_url) as db:
        user = await insert_user(db)
        await enqueue(
            db,
            message("digest", kind=MailKind.DIGEST, user_id=user),
            message("reset", kind=MailKind.PASSWORD_RESET, user_id=user),
        )
        claimed = await claim(db, wants=wants_none)
        assert [m.kind for m in claimed] == [MailKind.PASSWORD_RESET]
        skipped = await row(db, "digest")
        assert (skipped["state"], skipped["last_error"]) == ("skipped", store.OPTED_OUT)


async def test_mail_goes_with_its_user_when_the_account_is_deleted(database_url: str) -> None:
    async def delete(conn: asyncpg.Connection, user_id: int) -> None:
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)

    async with open_database(database_url) as db:
        user = await insert_user(db)
        await enqueue(db, message("w", user_id=user))
        await db.transaction(delete, user)
        assert await claim(db) == []


async def _dead(db: Database, key: str) -> ClaimedMail:
    await enqueue(db, message(key))
    [mail] = await claim(db)
    await db.transaction(
        store.mark_failed,
        mail.id,
        mail.lease_id,
        new=OutboxState.DEAD,
        error="550 no such user",
        retry_in=timedelta(0),
    )
    return mail


async def test_admins_list_the_outbox_by_state_with_counts(database_url: str) -> None:
    async with open_database(database_url) as db:
        dead = await _dead(db, "dead")
        await enqueue(db, message("p1"), message("p2"))
        page = await db.transaction(store.list_outbox, state=OutboxState.DEAD, limit=10, offset=0)
        assert [m.id for m in page.messages] == [dead.id]
        assert page.messages[0].last_error == "550 no such user"
        assert page.counts == {
            OutboxState.PENDING: 2,
            OutboxState.SENDING: 0,
            OutboxState.SENT: 0,
            OutboxState.SKIPPED: 0,
            OutboxState.DEAD: 1,
        }
        everything = await db.transaction(store.list_outbox, state=None, limit=2, offset=0)
        assert [m.idempotency_key for m in everything.messages] == ["p2", "p1"]


async def test_an_admin_retry_sends_a_dead_message_again_with_fresh_attempts(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        dead = await _dead(db, "dead")
        view = await db.transaction(store.retry_dead, dead.id)
        assert view is not None
        assert (view.state, view.attempts, view.last_error) == (
            OutboxState.PENDING,
            0,
            "550 no such user",
        )
        [again] = await claim(db)
        assert (again.id, again.attempt, again.message_id) == (dead.id, 1, dead.message_id)
        with pytest.raises(IllegalMove):
            await db.transaction(store.retry_dead, dead.id)
        assert await db.transaction(store.retry_dead, dead.id + 1000) is None


def _with_token(key: str) -> OutboxMessage:
    return message(
        key,
        kind=MailKind.PASSWORD_RESET,
        context={"name": "Ada", "token": f"secret-{key}", "expires_minutes": 60},
    )


async def test_a_message_keeps_its_secrets_until_it_is_sent_or_dead_and_no_longer(
    database_url: str,
) -> None:
    async def fail(mail: ClaimedMail, new: OutboxState) -> None:
        assert await db.transaction(
            store.mark_failed,
            mail.id,
            mail.lease_id,
            new=new,
            error="550 no such user",
            retry_in=timedelta(0),
        )

    async def context(key: str) -> dict:
        return json.loads((await row(db, key))["context"])

    async with open_database(database_url) as db:
        await enqueue(db, _with_token("sent"), _with_token("retried"), _with_token("dead"))
        # Claimed, it still has them: the mailer renders them into the mail.
        mails = {m.context["token"].removeprefix("secret-"): m for m in await claim(db)}
        assert set(mails) == {"sent", "retried", "dead"}
        assert await db.transaction(store.mark_sent, mails["sent"].id, mails["sent"].lease_id)
        await fail(mails["retried"], OutboxState.PENDING)
        await fail(mails["dead"], OutboxState.DEAD)

        assert await context("sent") == {"name": "Ada", "expires_minutes": 60}
        assert await context("dead") == {"name": "Ada", "expires_minutes": 60}
        # Still to be sent: the retry needs it.
        assert (await context("retried"))["token"] == "secret-retried"


async def test_a_message_buried_after_its_last_lease_ran_out_keeps_no_secret(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, _with_token("poison"))
        for _ in range(MAX_ATTEMPTS):
            await eventually(lambda: claim(db, lease=0.05), bool)
        await eventually(lambda: row(db, "poison"), lambda r: r["lease_until"] is not None)

        async def buried() -> asyncpg.Record:
            await claim(db)
            return await row(db, "poison")

        dead = await eventually(buried, lambda r: r["state"] == "dead")
        assert json.loads(dead["context"]) == {"name": "Ada", "expires_minutes": 60}
