"""Mail as it crosses boundaries: what a change writes into the outbox, what the Mailer claims
from it, and what `/api/v1/admin/mail` shows.

A message is rendered at send time from its template and context, so a name or a preference
changed between the change and the sending is the current one. The row's `message_id` is made
once, when the message is enqueued, and kept across every resend: a message sent twice after a
crash arrives twice with one `Message-ID`, and mail clients fold the two.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from proto.api import Response


class MailKind(enum.StrEnum):
    WELCOME = "welcome"
    DIGEST = "digest"  # new content in an enrolled course
    REMINDER = "reminder"
    ACHIEVEMENT = "achievement"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a template's name, not a secret
    ACCOUNT_EXISTS = "account_exists"  # someone tried to register this address


# Sent whatever the user's preferences, and without an unsubscribe link.
SECURITY_KINDS = frozenset({MailKind.PASSWORD_RESET, MailKind.ACCOUNT_EXISTS})


class OutboxState(enum.StrEnum):
    """Where a message is; moves only as `lms/domain/outbox.py` allows."""

    PENDING = "pending"  # waiting for its `due_at` (a first try, or a retry after a failure)
    SENDING = "sending"  # a mailer holds its lease
    SENT = "sent"  # the server accepted it
    SKIPPED = "skipped"  # not sent: the user opted out of its kind before it was due
    DEAD = "dead"  # failed for good, or too often; an admin may retry it


class OutboxMessage(msgspec.Struct, frozen=True, gc=False):
    """One message to write into the outbox with the change that causes it.

    `idempotency_key` names the message's period or cause (`"welcome:user:42"`,
    `"reminder:user:42:2026-W49"`): a second message with the same key is not written, so "at
    most one per period" is a constraint of the table. `context` holds JSON values only.
    """

    kind: MailKind
    idempotency_key: str
    user_id: int | None
    to: str
    template: str
    context: dict[str, Any]


# --- between the Mailer and the outbox --------------------------------------------------------


class ClaimedMail(msgspec.Struct, frozen=True, gc=False):
    """One attempt at one message, held by a mailer's lease: its completion is fenced on
    `lease_id`, so a mailer whose lease ran out (and another took the row) writes nothing."""

    id: int
    lease_id: str
    attempt: int  # 1 for the first attempt
    kind: MailKind
    user_id: int | None
    to: str
    template: str
    context: dict[str, Any]
    message_id: str  # "<...@host>", the same on every attempt


class MailWaiting(msgspec.Struct, frozen=True, gc=False, tag="mail_waiting"):
    """To the Mailer: a message was enqueued on this node; claim now, not at the next poll."""


# --- `/api/v1/admin/mail` ---------------------------------------------------------------------


class OutboxView(Response, frozen=True):
    id: int
    idempotency_key: str
    kind: MailKind
    user_id: int | None
    to: str
    template: str
    message_id: str
    state: OutboxState
    attempts: int
    due_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


class OutboxPage(Response, frozen=True):
    """Newest first; `counts` has every state, zero included."""

    messages: list[OutboxView]
    counts: dict[OutboxState, int]
