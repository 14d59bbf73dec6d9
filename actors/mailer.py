"""The Mailer: sends what the outbox holds, on any number of nodes, never losing a message and
sending none twice but the one in flight when a node dies.

Theory of operation
-------------------
Changes write their mail into the outbox (a table) in their own transactions; the Mailer only
reads it. In a loop it claims up to `batch` due messages under a fresh lease (the store's
`FOR UPDATE SKIP LOCKED` keeps mailers on other nodes off them), sends them at once through the
transport it was given, and completes each one fenced on the lease: sent; pending again after an
exponential backoff with jitter (a transient failure: connection refused, a timeout, a 4xx);
or dead (a 5xx for that address, an unrenderable message, or the last allowed attempt). A
message that fails does not hold up the others of its batch, nor the next batch. When nothing
is due it waits `poll_seconds`, or less when a `MailWaiting` arrives (a message was enqueued on
this node).

A stopping Mailer gives the messages it still holds back to the outbox (due now, their attempt
not counted), the one being sent included: whether the server got it is unknown, and sending it
again with the same Message-ID costs at most one duplicate that mail clients fold. A Mailer
killed without stopping leaves its lease to run out; another mailer then takes the messages
back the same way. An SMTP server down for an hour loses nothing: messages wait as pending rows
with growing `due_at` (lms/domain/outbox.py), and a store that cannot be reached is waited out
the same way. Nothing here imports storage or SMTP: the outbox, the transport and the composer
(rendering, headers) are passed in.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from functools import partial
from typing import Literal, Protocol

import structlog
import trio

from actors.runtime import Address, GiveUpHandler, Inbox, MailboxStatistics, Supervisor
from lms.domain.outbox import DeliveryFailed, RetryPolicy, after_failed_attempt, retry_delay
from proto.mail import ClaimedMail, MailWaiting, OutboxState

# Nudges only: whatever their number, one claim answers them all.
MAILBOX_CAPACITY = 64
# Messages claimed and sent at once: a slow or refused one delays its batch by at most
# `send_timeout`, never the messages after it.
BATCH = 8
POLL_SECONDS = 5.0
SEND_TIMEOUT = 60.0
# The longest a stopping Mailer spends giving its messages back (they come back anyway when
# their lease runs out).
RELEASE_TIMEOUT = 5.0


class OutboxUnavailable(Exception):
    """The outbox's store could not be reached; the call may be retried later."""


class Outbox(Protocol):
    """What the Mailer needs from the outbox (`lms.mail.outbox.PostgresOutbox` runs it on
    PostgreSQL). Each method may raise `OutboxUnavailable`; the completions are fenced on the
    mail's lease and return False, changing nothing, when the lease no longer holds it."""

    async def claim(self, lease_id: str, limit: int) -> tuple[list[ClaimedMail], int]:
        """Start an attempt at up to `limit` due messages under `lease_id`; return them, and how
        many the claim skipped instead (their user opted out of their kind)."""

    async def sent(self, mail: ClaimedMail) -> bool: ...

    async def failed(
        self, mail: ClaimedMail, new: OutboxState, error: str, retry_in: timedelta
    ) -> bool:
        """`new` is PENDING (due again after `retry_in`) or DEAD."""

    async def release(self, mails: list[ClaimedMail]) -> None:
        """Give the messages back, due now, without counting their attempt."""


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` to its `To` address.

        Raises:
          DeliveryFailed: it was not delivered; `permanent` when trying again cannot help.
        """


# The email for a claimed message: rendered from its template, with its headers. Runs in a
# worker thread; raising marks the message dead with the error (its data cannot be sent).
Compose = Callable[[ClaimedMail], EmailMessage]


@dataclass(frozen=True, slots=True)
class MailerConfig:
    batch: int = BATCH
    poll_seconds: float = POLL_SECONDS
    send_timeout: float = SEND_TIMEOUT
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, not {self.batch}")
        if not self.poll_seconds > 0 or not self.send_timeout > 0:
            raise ValueError("poll_seconds and send_timeout must be positive")


@dataclass(frozen=True, slots=True)
class MailerStatistics:
    """Over the life of the node (restarts included).

    Attributes:
      claims: claims made, the empty ones included.
      sent: messages the transport took.
      retried: failed attempts put back to be tried again later.
      dead: messages given up on (an admin may retry them).
      skipped: messages not sent because their user opted out of their kind.
      released: messages given back unsent by a stopping mailer.
      fenced: completions refused because the lease had run out (another mailer has it).
      in_flight: messages claimed and not yet completed, now.
      mailbox: the nudge mailbox.
    """

    claims: int
    sent: int
    retried: int
    dead: int
    skipped: int
    released: int
    fenced: int
    in_flight: int
    mailbox: MailboxStatistics


@dataclass
class _Tally:
    claims: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    released: int = 0
    fenced: int = 0
    in_flight: int = 0


class Mailer:
    """Sends the outbox's due messages; see the module's theory of operation.

    Mailbox full-policy: back-pressure (the sender waits). The mailbox holds only nudges,
    drained at once by one task, so a sender waits only while the Mailer is restarting.
    """

    def __init__(
        self,
        inbox: Inbox[MailWaiting],
        outbox: Outbox,
        transport: Transport,
        compose: Compose,
        config: MailerConfig,
        *,
        jitter: Callable[[], float] = random.random,
        tally: _Tally | None = None,
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._transport = transport
        self._compose = compose
        self._config = config
        self._jitter = jitter
        self._tally = _Tally() if tally is None else tally
        self._nudged = trio.Event()
        self._log = structlog.get_logger().bind(actor=inbox.name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen)
            task_status.started()
            while True:
                # Renewed before the claim, so a nudge arriving during it is not lost.
                self._nudged = trio.Event()
                batch = await self._claim()
                if batch:
                    await self._send_batch(batch)
                else:
                    with trio.move_on_after(self._config.poll_seconds):
                        await self._nudged.wait()

    async def _listen(self) -> None:
        async for _ in self._inbox:
            self._nudged.set()

    async def _claim(self) -> list[ClaimedMail]:
        try:
            claimed, skipped = await self._outbox.claim(str(uuid.uuid4()), self._config.batch)
        except OutboxUnavailable as exc:
            self._log.warning("outbox_unavailable", error=str(exc))
            return []
        self._tally.claims += 1
        self._tally.skipped += skipped
        return claimed

    async def _send_batch(self, batch: list[ClaimedMail]) -> None:
        holding = {mail.id: mail for mail in batch}
        self._tally.in_flight += len(batch)
        try:
            async with trio.open_nursery() as nursery:
                for mail in batch:
                    nursery.start_soon(self._deliver, mail, holding)
        finally:
            if holding:
                self._tally.in_flight -= len(holding)
                await self._release(list(holding.values()))

    async def _deliver(self, mail: ClaimedMail, holding: dict[int, ClaimedMail]) -> None:
        try:
            message = await trio.to_thread.run_sync(self._compose, mail)
        except Exception as exc:
            self._log.exception("mail_unrenderable", mail_id=mail.id, template=mail.template)
            failure: DeliveryFailed | None = DeliveryFailed(
                f"cannot render: {exc!r}", permanent=True
            )
        else:
            failure = await self._send(message)
        try:
            if failure is None:
                self._record(mail, await self._outbox.sent(mail), "sent")
            else:
                await self._fail(mail, failure)
        except OutboxUnavailable as exc:
            # Its lease runs out and another attempt sends it again (with the same Message-ID).
            self._log.warning("mail_completion_lost", mail_id=mail.id, error=str(exc))
        del holding[mail.id]
        self._tally.in_flight -= 1

    async def _send(self, message: EmailMessage) -> DeliveryFailed | None:
        with trio.move_on_after(self._config.send_timeout):
            try:
                await self._transport.send(message)
            except DeliveryFailed as failure:
                return failure
            return None
        return DeliveryFailed(f"no answer within {self._config.send_timeout:g} s", permanent=False)

    async def _fail(self, mail: ClaimedMail, failure: DeliveryFailed) -> None:
        policy = self._config.policy
        new = after_failed_attempt(mail.attempt, policy, permanent=failure.permanent)
        retry_in = retry_delay(policy, mail.attempt, self._jitter)
        recorded = await self._outbox.failed(mail, new, failure.reason, retry_in)
        if new is OutboxState.PENDING:
            self._record(mail, recorded, "retried")
            self._log.warning(
                "mail_retried",
                mail_id=mail.id,
                attempt=mail.attempt,
                error=failure.reason,
                retry_in=retry_in.total_seconds(),
            )
        else:
            self._record(mail, recorded, "dead")
            self._log.error(
                "mail_dead", mail_id=mail.id, attempt=mail.attempt, error=failure.reason
            )

    def _record(
        self, mail: ClaimedMail, recorded: bool, outcome: Literal["sent", "retried", "dead"]
    ) -> None:
        tally = self._tally
        if not recorded:
            tally.fenced += 1
            self._log.warning("mail_lease_lost", mail_id=mail.id, outcome=outcome)
        elif outcome == "sent":
            tally.sent += 1
        elif outcome == "retried":
            tally.retried += 1
        else:
            tally.dead += 1

    async def _release(self, mails: list[ClaimedMail]) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT):
            try:
                await self._outbox.release(mails)
            except OutboxUnavailable as exc:
                self._log.warning("mail_release_failed", count=len(mails), error=str(exc))
            else:
                self._tally.released += len(mails)


class MailerHandle:
    """What the rest of the node holds: the Mailer's address and its statistics."""

    def __init__(self, address: Address[MailWaiting], tally: _Tally) -> None:
        self._address = address
        self._tally = tally

    async def nudge(self) -> None:
        """Say a message was enqueued, so it goes now rather than at the next poll. Waits while
        the mailbox is full (back-pressure); the message is durable either way.

        Raises:
          ActorStopped: the Mailer is not running (the message waits for the next one).
        """
        await self._address.tell(MailWaiting())

    def statistics(self) -> MailerStatistics:
        tally = self._tally
        return MailerStatistics(
            claims=tally.claims,
            sent=tally.sent,
            retried=tally.retried,
            dead=tally.dead,
            skipped=tally.skipped,
            released=tally.released,
            fenced=tally.fenced,
            in_flight=tally.in_flight,
            mailbox=self._address.statistics(),
        )


async def start_mailer(
    supervisor: Supervisor,
    outbox: Outbox,
    transport: Transport,
    compose: Compose,
    config: MailerConfig,
    *,
    name: str = "mailer",
    jitter: Callable[[], float] = random.random,
    on_give_up: GiveUpHandler | None = None,
) -> MailerHandle:
    """Start a Mailer under `supervisor` (restarted on the same mailbox if it crashes;
    `on_give_up` as `Supervisor.start` takes it)."""
    tally = _Tally()
    address = await supervisor.start(
        name,
        partial(
            Mailer,
            outbox=outbox,
            transport=transport,
            compose=compose,
            config=config,
            jitter=jitter,
            tally=tally,
        ),
        capacity=MAILBOX_CAPACITY,
        on_give_up=on_give_up,
    )
    return MailerHandle(address, tally)
