"""Mail settings, unsubscribe links and template previews on a real node: settings per kind
for the signed-in user, a mail's unsubscribe link working without signing in (GET shows a
button and changes nothing, POST unsubscribes, RFC 8058 style), bad links refused, previews
for admins only; and a registration writes its welcome mail."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import trio

from lms.domain.unsubscribe import derived_key, sign
from lms.mail.samples import SAMPLES
from proto.mail import MailKind
from tests.lms.http.conftest import SECRET, Login, sign_up

SETTINGS = "/api/v1/users/me/notifications"
KEY = derived_key(SECRET)


async def _fetch(dsn: str, query: str, *args: object) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_settings_list_every_optional_kind_on_until_turned_off(
    api: httpx.AsyncClient, learner: Login
) -> None:
    before = await api.get(SETTINGS, headers=learner.auth)
    changed = await api.patch(SETTINGS, json={"reminder": False}, headers=learner.auth)
    after = await api.get(SETTINGS, headers=learner.auth)

    assert before.json() == {"welcome": True, "digest": True, "reminder": True, "achievement": True}
    assert changed.status_code == 200
    assert after.json() == {**before.json(), "reminder": False}


async def test_settings_refuse_security_kinds_strangers_and_bad_bodies(
    api: httpx.AsyncClient, learner: Login
) -> None:
    security = await api.patch(SETTINGS, json={"password_reset": False}, headers=learner.auth)
    wrong_type = await api.patch(SETTINGS, json={"digest": "no"}, headers=learner.auth)
    anonymous = await api.get(SETTINGS)

    assert security.status_code == 422
    assert wrong_type.status_code == 422
    assert anonymous.status_code == 401
    assert set(security.json()["error"]) >= {"code", "message"}


async def test_an_unsubscribe_link_shows_a_button_and_only_its_post_unsubscribes(
    api: httpx.AsyncClient, learner: Login
) -> None:
    token = sign(KEY, learner.user_id, MailKind.DIGEST)

    page = await api.get("/unsubscribe", params={"token": token})
    untouched = await api.get(SETTINGS, headers=learner.auth)
    clicked = await api.post(
        "/unsubscribe",
        params={"token": token},
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    again = await api.post("/api/v1/unsubscribe", params={"token": token})
    after = await api.get(SETTINGS, headers=learner.auth)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text
    assert "digests" in page.text
    assert untouched.json()["digest"] is True
    assert clicked.status_code == 200
    assert "no longer get" in clicked.text
    assert again.json() == {"user_id": learner.user_id, "kind": "digest"}
    assert after.json() == {"welcome": True, "digest": False, "reminder": True, "achievement": True}


async def test_a_tampered_or_foreign_unsubscribe_link_changes_nothing(
    api: httpx.AsyncClient, learner: Login
) -> None:
    other = await sign_up(api, "other@test.lms")
    theirs = sign(KEY, other.user_id, MailKind.REMINDER)
    forged = f"{learner.user_id}.reminder.{theirs.rsplit('.', 1)[1]}"
    wrong_key = sign(derived_key("another-secret-" + "y" * 40), learner.user_id, MailKind.REMINDER)
    security = sign(KEY, learner.user_id, MailKind.PASSWORD_RESET)

    answers = [
        await api.post("/api/v1/unsubscribe", params={"token": token})
        for token in (forged, wrong_key, security, "", "garbage")
    ]
    page = await api.get("/unsubscribe", params={"token": forged})

    assert [a.status_code for a in answers] == [400] * 5
    assert {a.json()["error"]["code"] for a in answers} == {"bad_unsubscribe_link"}
    assert page.status_code == 400
    assert "<form" not in page.text
    assert (await api.get(SETTINGS, headers=learner.auth)).json()["reminder"] is True


async def test_admins_preview_every_template_with_sample_data(
    api: httpx.AsyncClient, admin: Login, learner: Login
) -> None:
    for template in SAMPLES:
        answer = await api.get(f"/api/v1/admin/mail/preview/{template}", headers=admin.auth)
        assert answer.status_code == 200, template
        body = answer.json()
        assert body["template"] == template
        assert body["subject"]
        assert body["text"]
        assert body["html"].startswith("<!DOCTYPE html>")

    missing = await api.get("/api/v1/admin/mail/preview/nope", headers=admin.auth)
    learner_asks = await api.get("/api/v1/admin/mail/preview/welcome", headers=learner.auth)
    assert missing.status_code == 404
    assert learner_asks.status_code == 403


async def test_registering_writes_a_welcome_and_a_taken_address_a_security_notice(
    api: httpx.AsyncClient, database_url: str
) -> None:
    ada = await sign_up(api, "ada@test.lms", name="Ada")
    retry = await api.post(
        "/api/v1/auth/register",
        json={"email": "ADA@test.lms", "password": "another password!", "name": "Eve"},
    )
    await api.post(
        "/api/v1/auth/register",
        json={"email": "ada@test.lms", "password": "another password!", "name": "Eve"},
    )

    rows = await _fetch(
        database_url,
        "SELECT idempotency_key, kind, to_address, context::text FROM outbox ORDER BY id",
    )
    assert retry.status_code == 202  # as for a new address: who has an account is not told
    assert [(r["kind"], r["to_address"]) for r in rows] == [
        ("welcome", "ada@test.lms"),
        ("account_exists", "ada@test.lms"),  # once a day, however many tries
    ]
    assert rows[0]["idempotency_key"] == f"welcome:user:{ada.user_id}"
    assert '"Ada"' in rows[0]["context"]
