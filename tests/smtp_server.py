"""A real SMTP server for the mail tests: aiosmtpd in a thread of its own (its own asyncio loop,
apart from the tests' trio and the bridge's loop), on a free loopback port.

It records every message whose DATA it received, parsed, and can be told to:
- be down (`SmtpServer(...)` not started yet, or `stop()`): connections are refused;
- refuse some recipients with a permanent 550 at RCPT (`refuse`);
- hold the DATA of some recipients, once each, until the test releases it (`hold_once`): the
  message has reached the server, and its sender is still waiting for the answer.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOLD_TIMEOUT = 30.0  # a held message is let go after this, so a failing test cannot hang


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(
        self,
        *,
        refuse: frozenset[str] = frozenset(),
        hold_once: frozenset[str] = frozenset(),
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.refuse = refuse
        self.login = login
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._to_hold = set(hold_once)
        self._held: set[str] = set()
        self._release = threading.Event()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        user = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"smtp://{user}127.0.0.1:{self.port}"

    def start(self) -> None:
        extra: dict[str, Any] = {}
        if self.login is not None:
            extra = {"authenticator": self._authenticate, "auth_require_tls": False}
        # A plain selector loop: trio-asyncio's policy refuses to make one inside trio.
        self._controller = Controller(
            self,
            loop=asyncio.SelectorEventLoop(),
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10.0,
            **extra,
        )
        self._controller.start()

    def stop(self) -> None:
        self.release()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- what tests read ------------------------------------------------------------------------

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def deliveries(self) -> Counter[str]:
        """How many times each Message-ID arrived."""
        return Counter(str(m["Message-ID"]) for m in self.messages())

    def held(self) -> set[str]:
        """Recipients whose message arrived and is held."""
        with self._lock:
            return set(self._held)

    def release(self) -> None:
        self._release.set()

    # --- aiosmtpd's handler hooks (its thread) ---------------------------------------------------

    async def handle_RCPT(
        self, server: object, session: object, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(message)
            hold = [to for to in envelope.rcpt_tos if to in self._to_hold]
            self._to_hold.difference_update(hold)
            self._held.update(hold)
        if hold:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._release.wait, HOLD_TIMEOUT)
        return "250 OK"

    def _authenticate(
        self, server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == self.login
        )
        return AuthResult(success=ok, handled=False)


@contextmanager
def running_smtp_server(**options: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
