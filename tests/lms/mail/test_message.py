"""The email made from a claimed outbox row: its headers and parts, as mail clients read them."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

from lms.domain.unsubscribe import derived_key, verify
from lms.mail.message import Composer
from lms.mail.samples import SAMPLES
from proto.mail import ClaimedMail, MailKind

KEY = derived_key("k" * 32)
COMPOSER = Composer(
    sender="LMS <noreply@lms.example.edu>",
    public_url="https://lms.example.edu",
    unsubscribe_key=KEY,
)


def claimed(template: str, *, user_id: int | None = 42) -> ClaimedMail:
    kind, context = SAMPLES[template]
    return ClaimedMail(
        id=7,
        lease_id="lease",
        attempt=1,
        kind=kind,
        user_id=user_id,
        to="ada@example.org",
        template=template,
        context=context,
        message_id="<5f0c@lms.outbox>",
    )


def as_received(message: EmailMessage) -> EmailMessage:
    """The message as a mail client parses it off the wire."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_message_carries_the_rows_message_id_a_date_and_both_parts() -> None:
    message = as_received(COMPOSER(claimed("welcome")))
    assert message["Message-ID"] == "<5f0c@lms.outbox>"
    assert message["From"] == "LMS <noreply@lms.example.edu>"
    assert message["To"] == "ada@example.org"
    assert message["Subject"]
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # clients show the last part they can
    assert "Ada" in message.get_body(("plain",)).get_content()
    assert "Ada" in message.get_body(("html",)).get_content()


def test_optional_mail_offers_one_click_unsubscribe_for_its_user_and_kind() -> None:
    message = as_received(COMPOSER(claimed("digest")))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://lms.example.edu/unsubscribe?token=")
    assert verify(KEY, url.partition("token=")[2]) == (42, MailKind.DIGEST)
    assert url.replace("&", "&amp;") in message.get_body(("html",)).get_content()


def test_security_mail_has_no_unsubscribe_headers() -> None:
    message = as_received(COMPOSER(claimed("password_reset")))
    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


def test_mail_to_an_address_without_an_account_has_no_unsubscribe_headers() -> None:
    message = as_received(COMPOSER(claimed("welcome", user_id=None)))
    assert message["List-Unsubscribe"] is None
