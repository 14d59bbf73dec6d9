"""Sending through an SMTP server with aiosmtplib, across the bridge (aiosmtplib is an asyncio
library): one crossing per message, holding its connection, TLS, login, envelope and data.

A connection per message keeps each message's fate its own (a server that drops one session
fails one message) at the cost of a handshake each; the Mailer sends a few at once.

What a failure means for the message (`DeliveryFailed.permanent`):
- the server refused the recipient or the message itself with a 5xx: permanent, the message is
  dead at once (another attempt would be refused the same way) and the others go on;
- anything else (connection refused or dropped, a timeout, a 4xx, the server refusing our login
  or sender address): transient, tried again with backoff. A refused login or sender is the
  server's or our configuration's problem, not the message's; its messages wait for the fix.
"""

from __future__ import annotations

import contextlib
from email.message import EmailMessage

import aiosmtplib

from lms.domain.outbox import DeliveryFailed, is_permanent_reply
from lms.mail.smtp_url import SmtpTarget
from lms.store import bridge

# Each SMTP command's own timeout (aiosmtplib's, on the asyncio side); the Mailer's deadline
# for a whole message stays the one that counts.
COMMAND_TIMEOUT = 30.0
QUIT_TIMEOUT = 5.0


class SmtpTransport:
    def __init__(self, target: SmtpTarget, *, timeout: float = COMMAND_TIMEOUT) -> None:
        self._target = target
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        """Deliver `message` to its `To` address.

        Raises:
          DeliveryFailed: the server did not take it (`permanent` as the module says).
        """
        try:
            await bridge.call(self._send, message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            reason = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            raise DeliveryFailed(
                reason, permanent=bool(codes) and all(map(is_permanent_reply, codes))
            ) from exc
        except (aiosmtplib.SMTPDataError, aiosmtplib.SMTPRecipientRefused) as exc:
            raise DeliveryFailed(
                f"{exc.code} {exc.message}", permanent=is_permanent_reply(exc.code)
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(f"{exc.code} {exc.message}", permanent=False) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from exc

    async def _send(self, message: EmailMessage) -> None:
        target = self._target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.implicit_tls,
            start_tls=target.starttls,
            timeout=self._timeout,
        )
        try:
            await client.connect()  # and STARTTLS, and the login
            await client.send_message(message)
            # Once the server has the message, a QUIT that fails changes nothing.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=QUIT_TIMEOUT)
        finally:
            # Not aiosmtplib's `async with`: leaving it on cancellation sends QUIT and waits
            # for the answer, up to the command timeout, holding up a stopping node.
            client.close()
