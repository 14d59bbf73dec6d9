"""The embedded default's transport: each message written as an `.eml` file in a directory
(`<LMS_DATA_DIR>/mail` when LMS_SMTP_URL is unset), for a developer to open in a mail client.

A file appears whole or not at all: it is written under a hidden temporary name, flushed to
disk, and renamed. Names sort by time: `<UTC time>-<Message-ID's left part>.eml`, so a message
sent twice after a crash shows as two files with the same id.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import trio

from lms.domain.outbox import DeliveryFailed

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class EmlDirTransport:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def send(self, message: EmailMessage) -> None:
        """Write `message` as a new file.

        Raises:
          DeliveryFailed: the file could not be written (transient: a full disk may clear).
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        left = str(message["Message-ID"] or "").strip("<>").partition("@")[0]
        name = f"{stamp}-{_UNSAFE.sub('_', left) or 'message'}.eml"
        try:
            await trio.to_thread.run_sync(self._write, name, message.as_bytes())
        except OSError as exc:
            raise DeliveryFailed(f"cannot write {name}: {exc}", permanent=False) from exc

    def _write(self, name: str, data: bytes) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        partial = self._directory / f".{name}.tmp"
        try:
            with open(partial, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self._directory / name)
        finally:
            partial.unlink(missing_ok=True)
