from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from lms.domain.outbox import DeliveryFailed
from lms.mail.eml_dir import EmlDirTransport


def message(message_id: str) -> EmailMessage:
    m = EmailMessage()
    m["Message-ID"] = message_id
    m["To"] = "ada@example.org"
    m["Subject"] = "Hello"
    m.set_content("hello")
    return m


async def test_each_message_becomes_one_whole_eml_file_named_by_time_and_id(
    tmp_path: Path,
) -> None:
    mail_dir = tmp_path / "mail"  # made on first use
    transport = EmlDirTransport(mail_dir)
    await transport.send(message("<b1d2@lms.outbox>"))
    await transport.send(message("<../../etc/passwd@x>"))
    files = sorted(mail_dir.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    assert files[0].name.endswith("-b1d2.eml")
    assert all(f.parent == mail_dir and not f.name.startswith(".") for f in files)
    read = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert read["Message-ID"] == "<b1d2@lms.outbox>"


async def test_a_directory_that_cannot_be_written_is_a_transient_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "mail"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(DeliveryFailed) as failed:
        await EmlDirTransport(blocker).send(message("<1@x>"))
    assert not failed.value.permanent
