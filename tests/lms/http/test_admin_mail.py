"""`/api/v1/admin/mail` on a real node, whose Mailer writes .eml files (no SMTP configured):
the outbox by state with each message's last error, and an admin's retry of dead mail."""

from __future__ import annotations

import email
import email.policy

import httpx
import trio

from lms.config import Settings
from tests.lms.http.conftest import Login, sign_up
from tests.polling import eventually
from tests.sql import sql

OUTBOX = "/api/v1/admin/mail"


async def dead_message(dsn: str, user_id: int, to: str) -> int:
    """A welcome the mailers gave up on (its SMTP server refused it), as they leave it."""
    [row] = await sql(
        dsn,
        """
        INSERT INTO outbox (idempotency_key, kind, user_id, to_address, template, context,
                            state, attempts, last_error)
        VALUES ('welcome-again', 'welcome', $1, $2, 'welcome', '{"name": "Ada"}', 'dead', 8,
                '550 5.1.1 mailbox unavailable')
        RETURNING id
        """,
        user_id,
        to,
    )
    return row["id"]


def eml_files(settings: Settings) -> list[email.message.EmailMessage]:
    if not settings.mail_dir.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in sorted(settings.mail_dir.glob("*.eml"))
    ]


async def test_a_registration_welcome_arrives_as_an_eml_file_and_admins_see_it_sent(
    api: httpx.AsyncClient, admin: Login, settings: Settings
) -> None:
    ada = await sign_up(api, "ada@test.lms", name="Ada")

    async def sent() -> httpx.Response:
        return await api.get(OUTBOX, params={"state": "sent"}, headers=admin.auth)

    page = await eventually(sent, lambda r: r.json()["counts"]["sent"] >= 1)
    [welcome] = [m for m in page.json()["messages"] if m["to"] == "ada@test.lms"]
    assert welcome["kind"] == "welcome"
    assert welcome["user_id"] == ada.user_id
    assert welcome["attempts"] == 1
    assert welcome["sent_at"] is not None
    assert set(page.json()["counts"]) == {"pending", "sending", "sent", "skipped", "dead"}
    files = await eventually(
        lambda: trio.to_thread.run_sync(eml_files, settings),
        lambda found: any(m["To"] == "ada@test.lms" for m in found),
    )
    [eml] = [m for m in files if m["To"] == "ada@test.lms"]
    assert eml["Message-ID"] == welcome["message_id"]
    assert eml["List-Unsubscribe"].startswith("<http")


async def test_admins_see_dead_mail_with_its_error_and_a_retry_delivers_it(
    api: httpx.AsyncClient, admin: Login, learner: Login, settings: Settings, database_url: str
) -> None:
    mail_id = await dead_message(database_url, learner.user_id, learner.email)

    dead = await api.get(OUTBOX, params={"state": "dead"}, headers=admin.auth)
    assert dead.status_code == 200
    [listed] = dead.json()["messages"]
    assert (listed["id"], listed["last_error"]) == (mail_id, "550 5.1.1 mailbox unavailable")
    assert dead.json()["counts"]["dead"] == 1

    retried = await api.post(f"{OUTBOX}/{mail_id}/retry", headers=admin.auth)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)

    async def state() -> str:
        [row] = await sql(database_url, "SELECT state FROM outbox WHERE id = $1", mail_id)
        return row["state"]

    assert await eventually(state, lambda s: s == "sent") == "sent"
    message_id = (await sql(database_url, "SELECT message_id FROM outbox WHERE id = $1", mail_id))[
        0
    ]["message_id"]
    files = await trio.to_thread.run_sync(eml_files, settings)
    assert [m["Message-ID"] for m in files].count(message_id) == 1


async def test_only_dead_mail_can_be_retried_and_only_by_admins(
    api: httpx.AsyncClient, admin: Login, learner: Login, database_url: str
) -> None:
    mail_id = await dead_message(database_url, learner.user_id, learner.email)
    by_learner = await api.post(f"{OUTBOX}/{mail_id}/retry", headers=learner.auth)
    anonymous = await api.post(f"{OUTBOX}/{mail_id}/retry")
    assert (by_learner.status_code, anonymous.status_code) == (403, 401)

    assert (await api.post(f"{OUTBOX}/{mail_id}/retry", headers=admin.auth)).status_code == 200
    again = await api.post(f"{OUTBOX}/{mail_id}/retry", headers=admin.auth)
    assert again.status_code == 409
    assert again.json()["error"]["code"]
    missing = await api.post(f"{OUTBOX}/{mail_id + 1000}/retry", headers=admin.auth)
    assert missing.status_code == 404


async def test_the_outbox_list_is_for_admins_and_refuses_bad_parameters(
    api: httpx.AsyncClient, admin: Login, learner: Login
) -> None:
    assert (await api.get(OUTBOX, headers=learner.auth)).status_code == 403
    assert (await api.get(OUTBOX)).status_code == 401
    bad_state = await api.get(OUTBOX, params={"state": "lost"}, headers=admin.auth)
    assert bad_state.status_code == 422
    assert "pending, sending, sent, skipped, dead" in bad_state.json()["error"]["message"]
    bad_limit = await api.get(OUTBOX, params={"limit": "0"}, headers=admin.auth)
    assert bad_limit.status_code == 422
