"""A claimed outbox row made into the email that goes out: rendered at send time (so names and
preferences are current), with the row's Message-ID, so a message sent twice after a crash is
one message to mail clients.

Every message is multipart/alternative, plain text first and HTML last (clients show the last
part they can). Mail a user can turn off carries `List-Unsubscribe` with the footer's one-click
URL and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): mail clients then show
an unsubscribe button that POSTs to it, and large mailbox providers expect both from bulk
senders. Security mail carries neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from lms.domain.unsubscribe import UnsubscribeKey
from lms.mail.render import RenderedMail, links_for, render
from proto.mail import ClaimedMail


@dataclass(frozen=True, slots=True)
class Composer:
    """Makes the email for a claimed message; pure but for the clock, and thread-safe (the
    Mailer runs it in a worker thread: rendering and CSS inlining take milliseconds)."""

    sender: str  # LMS_MAIL_FROM: "LMS <noreply@example.org>"
    public_url: str  # LMS_PUBLIC_URL: absolute links and the unsubscribe URL start with it
    unsubscribe_key: UnsubscribeKey

    def __call__(self, mail: ClaimedMail) -> EmailMessage:
        """Raises what `render` raises (an unknown template, a context missing a value)."""
        links = links_for(self.public_url, self.unsubscribe_key, mail.user_id, mail.kind)
        rendered = render(mail.template, mail.context, links)
        return build_message(
            mail,
            rendered,
            sender=self.sender,
            unsubscribe_url=links.unsubscribe_url,
            date=datetime.now().astimezone(),
        )


def build_message(
    mail: ClaimedMail,
    rendered: RenderedMail,
    *,
    sender: str,
    unsubscribe_url: str | None,
    date: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = mail.message_id
    message["Date"] = format_datetime(date)
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = rendered.subject
    if unsubscribe_url is not None:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Replies go nowhere useful, and auto-responders should not answer notifications.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
