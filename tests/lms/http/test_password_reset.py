"""Password reset on a real node and PostgreSQL: the same answer for any address, a token that
works once within the hour and only as mailed, every session ended, and limits per address and
per client."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest
import trio

from actors.mailer import POLL_SECONDS
from lms.config import Settings
from lms.domain.client_address import parse_networks
from lms.domain.token_bucket import Limit
from lms.node import serve
from tests import reset_mail
from tests.answer_times import assert_alike
from tests.lms.http.conftest import PASSWORD, log_in, sign_up
from tests.polling import eventually
from tests.sql import sql

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "a new password, long enough"
PLENTY = Limit(capacity=10_000, rate=1.0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Limits out of the way, but for the tests of the limits (which start their own node)."""
    return replace(settings, reset_limit_per_address=PLENTY, reset_limit_per_ip=PLENTY)


async def reset_mails(dsn: str) -> list[asyncpg.Record]:
    return await sql(
        dsn,
        """
        SELECT idempotency_key, user_id, to_address, template, context, message_id
        FROM outbox WHERE kind = 'password_reset' ORDER BY id
        """,
    )


async def ask_reset(api: httpx.AsyncClient, email: str, **kwargs: Any) -> httpx.Response:
    return await api.post(RESET, json={"email": email}, **kwargs)


async def mailed_token(api: httpx.AsyncClient, settings: Settings, email: str) -> str:
    """Ask for a reset of `email` and read the token from the mail it wrote."""
    assert settings.database_url is not None
    before = len(await reset_mails(settings.database_url))
    assert (await ask_reset(api, email)).status_code == 202
    mails = await reset_mails(settings.database_url)
    assert len(mails) == before + 1
    # The node's Mailer may have sent it already, and the row no longer holds the token.
    return await trio.to_thread.run_sync(
        reset_mail.mailed_token, _context(mails[-1]), mails[-1]["message_id"], settings.mail_dir
    )


def _context(mail: asyncpg.Record) -> dict[str, Any]:
    return json.loads(mail["context"])


async def confirm(
    api: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD, **fields: str
) -> httpx.Response:
    return await api.post(CONFIRM, json={"token": token, "password": password, **fields})


async def test_the_answer_is_the_same_whether_or_not_an_account_has_the_address(
    api: httpx.AsyncClient, database_url: str
) -> None:
    await sign_up(api, "ann@example.org")
    known = await ask_reset(api, "ANN@example.org")
    unknown = await ask_reset(api, "nobody@example.org")
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert {k: v for k, v in known.headers.items() if k not in ("date", "x-request-id")} == {
        k: v for k, v in unknown.headers.items() if k not in ("date", "x-request-id")
    }
    # Mail only for the account, to its address as registered, and a reset row only for it.
    mails = await reset_mails(database_url)
    assert [(m["to_address"], m["template"]) for m in mails] == [
        ("ann@example.org", "password_reset")
    ]
    resets = await sql(database_url, "SELECT id, user_id FROM password_resets")
    assert len(resets) == 1
    assert mails[0]["idempotency_key"] == f"reset:{resets[0]['id']}"
    assert mails[0]["user_id"] == resets[0]["user_id"]
    context = _context(mails[0])
    assert (context["name"], context["expires_minutes"]) == ("Test User", 60)


async def test_the_answer_takes_as_long_whether_or_not_an_account_has_the_address(
    api: httpx.AsyncClient, database_url: str
) -> None:
    await sign_up(api, "ann@example.org")
    timings: dict[str, list[float]] = {"ann@example.org": [], "nobody@example.org": []}
    for _ in range(5):  # warm the connection and the pool
        await ask_reset(api, "nobody@example.org")
    for turn in range(60):
        # Interleaved, so both see the same load on a shared machine.
        for email in sorted(timings, reverse=turn % 2 == 1):
            started = time.perf_counter()
            assert (await ask_reset(api, email)).status_code == 202
            timings[email].append(time.perf_counter() - started)
    known, unknown = (sorted(t) for t in timings.values())
    # (Checked to fail with an argon2 hash on one path only: 116 ms against 28 ms.)
    assert_alike(known, unknown)


async def test_a_token_resets_the_password_once(api: httpx.AsyncClient, settings: Settings) -> None:
    await sign_up(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    assert (await confirm(api, token)).status_code == 204
    await log_in(api, "ann@example.org", NEW_PASSWORD)
    old = await api.post(
        "/api/v1/auth/login", json={"email": "ann@example.org", "password": PASSWORD}
    )
    assert old.status_code == 401

    again = await confirm(api, token, "yet another password")
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "reset_token_used"
    await log_in(api, "ann@example.org", NEW_PASSWORD)


async def test_after_a_reset_every_session_of_the_account_is_over(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    phone = await sign_up(api, "ann@example.org")
    laptop = await log_in(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    assert (await confirm(api, token)).status_code == 204
    for session in (phone, laptop):
        me = await api.get("/api/v1/users/me", headers=session.auth)
        assert me.status_code == 401
        refreshed = await api.post(
            "/api/v1/auth/refresh", json={"refresh_token": session.refresh_token}
        )
        assert refreshed.status_code == 401
    fresh = await log_in(api, "ann@example.org", NEW_PASSWORD)
    assert (await api.get("/api/v1/users/me", headers=fresh.auth)).status_code == 200


async def test_an_expired_token_is_refused(
    api: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    await sql(database_url, "UPDATE password_resets SET expires_at = now() - interval '1 s'")
    refused = await confirm(api, token)
    assert refused.status_code == 410
    assert refused.json()["error"]["code"] == "reset_token_expired"
    await log_in(api, "ann@example.org")  # the password is unchanged


async def test_a_token_expires_an_hour_after_it_was_asked_for(
    api: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    await mailed_token(api, settings, "ann@example.org")
    (row,) = await sql(database_url, "SELECT expires_at - created_at AS life FROM password_resets")
    assert row["life"].total_seconds() == pytest.approx(3600, abs=1)


@pytest.mark.parametrize("position", [0, 21, 42])
async def test_a_token_changed_anywhere_is_refused(
    api: httpx.AsyncClient, settings: Settings, position: int
) -> None:
    await sign_up(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
    for tampered in (changed, token + "A", token[:-1]):
        refused = await confirm(api, tampered)
        assert refused.status_code == 400, tampered
        assert refused.json()["error"]["code"] == "reset_token_invalid"
    assert (await confirm(api, token)).status_code == 204  # the real one still works


async def test_a_token_is_refused_for_another_account_and_resets_only_its_own(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    bob = await sign_up(api, "bob@example.org")
    anns = await mailed_token(api, settings, "ann@example.org")
    refused = await confirm(api, anns, email="bob@example.org")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "reset_token_invalid"

    assert (await confirm(api, anns, email="Ann@Example.org")).status_code == 204
    await log_in(api, "ann@example.org", NEW_PASSWORD)
    await log_in(api, "bob@example.org", PASSWORD)  # Bob's password and sessions are his
    assert (await api.get("/api/v1/users/me", headers=bob.auth)).status_code == 200


async def test_a_reset_ends_the_accounts_other_tokens_too(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    first = await mailed_token(api, settings, "ann@example.org")
    second = await mailed_token(api, settings, "ann@example.org")
    assert first != second
    assert (await confirm(api, second)).status_code == 204
    refused = await confirm(api, first, "a password from an old mail")
    assert refused.status_code == 410
    assert refused.json()["error"]["code"] == "reset_token_used"


async def test_the_new_password_follows_the_rules_of_registration(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    short = await confirm(api, token, "short")
    assert short.status_code == 422
    for weak in ("password1", "abcdefghij", "ann-example-org"):
        refused = await confirm(api, token, weak)
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "weak_password"
    assert (await confirm(api, token)).status_code == 204  # the refusals did not spend it


async def test_reset_mail_goes_out_at_once_not_at_the_mailers_next_poll(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    read_mails = functools.partial(trio.to_thread.run_sync, reset_mail.mails_in, settings.mail_dir)
    await eventually(read_mails, lambda mails: len(mails) == 1)  # the welcome
    # Each asked for right after the one before went out: without a nudge it waits a poll.
    for sent in (2, 3):
        assert (await ask_reset(api, "ann@example.org")).status_code == 202
        await eventually(
            read_mails, lambda mails, sent=sent: len(mails) == sent, within=POLL_SECONDS / 2
        )


async def test_only_the_tokens_hash_is_stored(
    api: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    await sign_up(api, "ann@example.org")
    token = await mailed_token(api, settings, "ann@example.org")
    (row,) = await sql(database_url, "SELECT token_hash FROM password_resets")
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert len(token) >= 43  # 32 random bytes


async def strict_node(nursery: trio.Nursery, settings: Settings, **limits: Any) -> str:
    return await nursery.start(serve, replace(settings, **limits))


async def test_too_many_requests_for_one_address_get_429_with_retry_after(
    nursery: trio.Nursery, settings: Settings
) -> None:
    url = await strict_node(nursery, settings, reset_limit_per_address=Limit(3, 3 / 3600))
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        await sign_up(api, "ann@example.org")
        for _ in range(3):
            assert (await ask_reset(api, "ann@example.org")).status_code == 202
        for email in ("ann@example.org", "ANN@example.org"):
            limited = await ask_reset(api, email)
            assert limited.status_code == 429
            assert limited.json()["error"]["code"] == "rate_limited"
            assert 1100 <= int(limited.headers["Retry-After"]) <= 1200  # a token per 20 min
        # Another address is not held up, and an address nobody has is limited alike.
        for _ in range(3):
            assert (await ask_reset(api, "nobody@example.org")).status_code == 202
        assert (await ask_reset(api, "nobody@example.org")).status_code == 429


async def test_too_many_requests_from_one_client_get_429_with_retry_after(
    nursery: trio.Nursery, settings: Settings
) -> None:
    url = await strict_node(
        nursery,
        settings,
        reset_limit_per_ip=Limit(4, 4 / 60),
        trusted_proxies=parse_networks("127.0.0.1"),
    )
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        for n in range(4):
            assert (await ask_reset(api, f"user{n}@example.org")).status_code == 202
        limited = await ask_reset(api, "user9@example.org")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) == 15
        # Confirming counts against the client too.
        assert (await confirm(api, "x" * 43)).status_code == 429
        # Behind a trusted proxy, each client has its own limit.
        behind = await ask_reset(
            api, "user9@example.org", headers={"X-Forwarded-For": "198.51.100.7"}
        )
        assert behind.status_code == 202


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(
    nursery: trio.Nursery, settings: Settings
) -> None:
    url = await strict_node(nursery, settings, reset_limit_per_ip=Limit(2, 2 / 60))
    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        statuses = [
            (
                await ask_reset(
                    api, f"user{n}@example.org", headers={"X-Forwarded-For": f"198.51.100.{n}"}
                )
            ).status_code
            for n in range(3)
        ]
        assert statuses == [202, 202, 429]
