"""The SMTP transport against a real SMTP server (aiosmtpd), across the real bridge."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from lms.domain.outbox import DeliveryFailed
from lms.mail.smtp import SmtpTransport
from lms.mail.smtp_url import parse_smtp_url
from lms.store.bridge import open_bridge
from tests.smtp_server import SmtpServer, running_smtp_server


def message(to: str) -> EmailMessage:
    m = EmailMessage()
    m["Message-ID"] = "<1@lms.test>"
    m["From"] = "LMS <lms@example.org>"
    m["To"] = to
    m["Subject"] = "Hello"
    m.set_content("hello")
    return m


async def test_a_message_reaches_the_server_after_logging_in() -> None:
    with running_smtp_server(login=("ada@example.org", "p@ss:word")) as server:
        url = f"smtp://ada%40example.org:p%40ss%3Aword@127.0.0.1:{server.port}"
        async with open_bridge():
            await SmtpTransport(parse_smtp_url(url)).send(message("bob@example.org"))
        [received] = server.messages()
        assert received["Message-ID"] == "<1@lms.test>"


async def test_a_wrong_password_is_not_the_messages_fault() -> None:
    with running_smtp_server(login=("ada", "right")) as server:
        url = f"smtp://ada:wrong@127.0.0.1:{server.port}"
        async with open_bridge():
            with pytest.raises(DeliveryFailed) as failed:
                await SmtpTransport(parse_smtp_url(url)).send(message("bob@example.org"))
        assert not failed.value.permanent
        assert server.messages() == []


async def test_an_address_the_server_refuses_for_good_is_a_permanent_failure() -> None:
    with running_smtp_server(refuse=frozenset({"nobody@example.org"})) as server:
        async with open_bridge():
            with pytest.raises(DeliveryFailed) as failed:
                await SmtpTransport(parse_smtp_url(server.url)).send(message("nobody@example.org"))
        assert failed.value.permanent
        assert failed.value.reason.startswith("550")


async def test_a_server_that_is_down_is_a_transient_failure() -> None:
    down = SmtpServer()  # never started: its port refuses connections
    async with open_bridge():
        with pytest.raises(DeliveryFailed) as failed:
            await SmtpTransport(parse_smtp_url(down.url)).send(message("bob@example.org"))
    assert not failed.value.permanent
