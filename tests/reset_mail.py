"""Password-reset mail as the tests read it: the link in a mail a node wrote to its mail dir (no
SMTP configured), and the token of an outbox row, which the row keeps only until it is sent
(lms/store/outbox.py drops it then) and the mail keeps after."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote

_LINK = re.compile(r"\S+/reset-password#token=(\S+)")


def mails_in(mail_dir: Path) -> list[EmailMessage]:
    """Every .eml file the node wrote so far, oldest name first."""
    if not mail_dir.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(mail_dir.glob("*.eml"))
    ]


def reset_link(mail: EmailMessage) -> tuple[str, str]:
    """The reset link in the mail's text part, and the token it carries."""
    text = mail.get_body(("plain",))
    assert text is not None, "a reset mail has a text part"
    found = _LINK.search(text.get_content())
    assert found is not None, "a reset mail has a reset link"
    return found.group(0), unquote(found.group(1))


def mailed_token(context: dict[str, Any], message_id: str, mail_dir: Path) -> str:
    """The token of the reset mail with this outbox `context` and `message_id`: from the row
    while it holds it, else from the mail the row became."""
    if "token" in context:
        return context["token"]
    [mail] = [m for m in mails_in(mail_dir) if m["Message-ID"] == message_id]
    return reset_link(mail)[1]
