"""Mail preferences against a real PostgreSQL: every optional kind is on until its user turns it
off, a choice is kept per user and kind, and security mail is wanted whatever is stored."""

from __future__ import annotations

import asyncpg
import pytest

from lms.store import bridge
from lms.store import mail_preferences as prefs
from proto.mail import SECURITY_KINDS, MailKind
from proto.notifications import OPTIONAL_KINDS
from tests.progress_setup import open_database, seed


async def test_every_optional_kind_is_on_until_turned_off(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        ada, bob = (await db.transaction(seed)).learners[:2]

        assert await db.transaction(prefs.preferences, ada) == dict.fromkeys(OPTIONAL_KINDS, True)
        after = await db.transaction(
            prefs.set_preferences, ada, {MailKind.DIGEST: False, MailKind.REMINDER: False}
        )

        assert after == {
            MailKind.WELCOME: True,
            MailKind.DIGEST: False,
            MailKind.REMINDER: False,
            MailKind.ACHIEVEMENT: True,
        }
        assert not await db.transaction(prefs.wants, ada, MailKind.DIGEST)
        assert await db.transaction(prefs.wants, ada, MailKind.ACHIEVEMENT)
        assert await db.transaction(prefs.wants, bob, MailKind.DIGEST)  # only Ada chose

        await db.transaction(prefs.set_preferences, ada, {MailKind.DIGEST: True})
        assert await db.transaction(prefs.wants, ada, MailKind.DIGEST)


@pytest.mark.parametrize("kind", sorted(SECURITY_KINDS))
async def test_security_mail_is_wanted_whatever_is_stored(database_url: str, kind) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        ada = (await db.transaction(seed)).learners[0]
        with pytest.raises(ValueError, match="can be turned off"):
            await db.transaction(prefs.set_preferences, ada, {kind: False})

        async def sneak_in(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO mail_preferences (user_id, kind, enabled) VALUES ($1, $2, false)",
                ada,
                kind.value,
            )

        with pytest.raises(asyncpg.CheckViolationError):
            await db.transaction(sneak_in)
        assert await db.transaction(prefs.wants, ada, kind)


async def test_choices_for_a_user_who_does_not_exist_change_nothing(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        assert await db.transaction(prefs.set_preferences, 999, {MailKind.DIGEST: False}) is None
