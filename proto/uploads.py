"""Uploads as the store keeps them (tus state lives in headers, not in bodies)."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec


class UploadState(enum.StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"
    TERMINATED = "terminated"


class Upload(msgspec.Struct, frozen=True, gc=False):
    id: str
    owner_id: int
    content_id: int
    filename: str
    upload_length: int
    upload_offset: int
    state: UploadState
    expires_at: datetime
    expired: bool  # computed by PostgreSQL's clock, not ours
