"""`/reset-password` in headless Chromium against a real node that writes its mail as .eml files:
a learner who forgot their password follows the sign-in form's link, asks for a reset, opens the
link of the mail that arrives, and sets a new password that the API then takes; every refusal on
the way (another link, an expired one, a used one, passwords that differ or break the rules)
shows the server's words on the page."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.e2e.nodes import SECRET, NodeProcess, node_env, output_lines, start_node
from tests.lms.http.conftest import PASSWORD, sign_up
from tests.polling import eventually
from tests.reset_mail import mails_in, reset_link
from tests.smtp_server import free_port
from tests.sql import sql

pytestmark = pytest.mark.e2e

DEADLINE = 90.0  # the Mailer polls its outbox every 5 s
EMAIL = "ada@example.org"
NEW_PASSWORD = "a new password, long enough"


@pytest.fixture
async def node(database_url: str, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    # On a port of its own, as an operator runs it: mail links name the configured port (with
    # LMS_PORT=0 they would say :0, and LMS_PUBLIC_URL would be needed).
    env = node_env(
        tmp_path / "data",
        LMS_DATABASE_URL=database_url,
        LMS_SECRET_KEY=SECRET,
        LMS_PORT=str(free_port()),
    )
    node = await start_node(env, tmp_path / "node.log")
    try:
        yield node
    finally:
        assert await node.stop() == 0, node.log()


class ResetPage:
    """The driver process (tests/e2e/reset_password_page_driver.py): one command, one answer."""

    def __init__(self, browser: trio.Process, log: Path) -> None:
        assert browser.stdin is not None
        self._stdin = browser.stdin
        self._lines = output_lines(browser.stdout)
        self.log = log

    async def do(self, command: str, **fields: str) -> dict[str, Any]:
        await self._stdin.send_all(json.dumps({"do": command, **fields}).encode() + b"\n")
        try:
            return json.loads(await anext(self._lines))
        except StopAsyncIteration:
            errors = await trio.Path(self.log).read_text()
            raise AssertionError(f"the browser driver quit:\n{errors}") from None

    async def choose(self, link: str, password: str, again: str | None = None) -> dict[str, Any]:
        return await self.do("choose", url=link, password=password, again=again or password)


@asynccontextmanager
async def reset_page(log: Path) -> AsyncIterator[ResetPage]:
    command = [sys.executable, "-m", "tests.e2e.reset_password_page_driver"]
    with log.open("wb") as stderr:
        browser = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        yield ResetPage(browser, log)
        assert browser.stdin is not None
        await browser.stdin.aclose()
        assert await browser.wait() == 0, await trio.Path(log).read_text()
    finally:
        browser.kill()
        await browser.wait()


async def reset_mail_to(mail_dir: Path, address: str) -> EmailMessage:
    def read() -> list[EmailMessage]:
        return [m for m in mails_in(mail_dir) if m["To"] == address and "password" in m["Subject"]]

    [mail] = await eventually(lambda: trio.to_thread.run_sync(read), bool, within=DEADLINE)
    return mail


async def sent_reset_context(dsn: str) -> dict[str, Any]:
    """The context the reset mail's outbox row keeps once sent (its file is written first)."""
    statement = "SELECT context FROM outbox WHERE kind = 'password_reset' AND state = 'sent'"
    [row] = await eventually(lambda: sql(dsn, statement), bool)
    return json.loads(row["context"])


async def test_a_learner_who_forgot_their_password_sets_a_new_one_from_the_mailed_link(
    node: NodeProcess, database_url: str, tmp_path: Path
) -> None:
    with trio.fail_after(DEADLINE):
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            await sign_up(api, EMAIL)
            async with reset_page(tmp_path / "browser.log") as page:
                asked = await page.do("ask", url=node.url, email=EMAIL)
                mail = await reset_mail_to(tmp_path / "data" / "mail", EMAIL)
                link, token = reset_link(mail)
                context = await sent_reset_context(database_url)

                other = await page.choose(link.replace(token, token[::-1]), NEW_PASSWORD)
                await sql(
                    database_url, "UPDATE password_resets SET expires_at = now() - interval '1 s'"
                )
                expired = await page.choose(link, NEW_PASSWORD)
                await sql(
                    database_url, "UPDATE password_resets SET expires_at = now() + interval '1 h'"
                )
                differ = await page.choose(link, NEW_PASSWORD, NEW_PASSWORD + "!")
                short = await page.choose(link, "short")
                done = await page.choose(link, NEW_PASSWORD)
                again = await page.choose(link, "yet another password")

            new = await api.post(
                "/api/v1/auth/login", json={"email": EMAIL, "password": NEW_PASSWORD}
            )
            old = await api.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})

    # The sign-in form's link carried the address typed there (in the fragment, read and gone).
    assert (asked["path"], asked["prefilled"]) == ("/reset-password", EMAIL)
    assert (asked["status"], asked["done"]) == (202, "Check your e-mail")
    assert asked["done_text"].startswith("If an account has this address, a link")
    # The mail links to this node's page with the token in the fragment; once sent, the outbox
    # row no longer holds it.
    assert link.startswith(f"{node.url}/reset-password#token=")
    assert "token" not in context

    # The token leaves the address bar as soon as the page has read it.
    assert other["address"] == f"{node.url}/reset-password"
    assert other["ask_shown"]  # a dead link: the page offers to ask for another
    assert other["ask_notice"].startswith("This reset link is not valid")
    assert expired["ask_notice"] == "This reset link has expired; ask for a new one."
    assert differ["choose_notice"] == "The two passwords differ; type the same one twice."
    assert short["choose_notice"].startswith("This password cannot be used: ")
    assert "$.password" in short["choose_notice"]
    assert not short["done"]
    assert done["done"] == "Your password is set"
    assert done["done_link"] == "/dashboard"
    assert again["ask_notice"].startswith("This reset link was already used")

    assert new.status_code == 200, new.text
    assert old.status_code == 401
