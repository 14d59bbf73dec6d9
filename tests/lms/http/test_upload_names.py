"""Hostile file names against a real node, in tus `Upload-Metadata` (filename, filetype) and
multipart filenames: traversal (`../../`, `..\\`, absolute paths), NUL, RTL override, full-width
dots and solidus, combining marks, NFKC look-alikes of `..`, overlong names. Each is refused
with a 4xx JSON error or its bytes are stored under the server's name inside the media directory;
nothing is written anywhere else, and the name shown back is the sanitised one
(lms/domain/upload_names.py)."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import httpx
import hypothesis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lms.config import Settings
from lms.domain.edge_limits import parse_limit
from lms.domain.upload_names import shown_name
from tests.lms.domain.test_upload_names import NAMES
from tests.lms.http.conftest import Login
from tests.lms.http.test_errors import answered_without_a_5xx, holds_for_every_example
from tests.lms.http.test_uploads import TUS, metadata, video_content
from tests.sql import sql

BODY = b"\x00\x00\x00\x18ftypmp42"  # a few bytes: the name is what is tried here
# Where an escaping name would land: next to the data dir, and absolute.
ESCAPE = "escaped.mp4"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Hundreds of uploads by one admin: more than the per-account limit lets through.
    limits = dataclasses.replace(settings.rate_limits, upload_per_user=parse_limit("20000/60"))
    return dataclasses.replace(settings, transcode_workers=0, rate_limits=limits)


def files_under(root: Path) -> set[Path]:
    return {Path(d) / name for d, _, names in os.walk(root) for name in names}


def tus_upload(client: httpx.Client, who: Login, content_id: int, raw: str) -> str | None:
    """The name the server shows back for a tus upload named `raw` (sent whole, with `raw` as
    its `filetype` too, which the server ignores), or None if it refused the name."""
    encoded = base64.b64encode(raw.encode()).decode()
    named = f"filename {encoded},filetype {encoded}" if raw else "filename,filetype"
    created = client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **who.auth,
            "Upload-Length": str(len(BODY)),
            "Upload-Metadata": f"{metadata(content_id=content_id)},{named}",
        },
    )
    answered_without_a_5xx(created, raw)
    if created.status_code != 201:
        assert created.status_code in (400, 422), (raw, created.text)
        return None
    url = created.headers["Location"]
    sent = client.patch(
        url,
        content=BODY,
        headers={
            **TUS,
            **who.auth,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert sent.status_code == 204, (raw, sent.text)
    head = client.head(url, headers={**TUS, **who.auth})
    shown = dict(item.split(" ") for item in head.headers["Upload-Metadata"].split(","))
    assert set(shown) == {"content_id", "filename"}, raw  # filetype is neither kept nor echoed
    return base64.b64decode(shown["filename"]).decode()


def multipart_upload(client: httpx.Client, who: Login, content: dict, raw: str) -> bool:
    """Send `raw` as the multipart filename, escaped as browsers do (HTML's form encoding);
    True if the server stored it."""
    quoted = raw.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
        + quoted.encode()
        + b'"\r\nContent-Type: video/mp4\r\n\r\n'
        + BODY
        + b"\r\n--B--\r\n"
    )
    answer = client.post(
        f"/api/v1/courses/{content['course_id']}/contents/{content['id']}/video",
        content=body,
        headers={**who.auth, "Content-Type": "multipart/form-data; boundary=B"},
    )
    answered_without_a_5xx(answer, raw)
    if answer.status_code != 202:
        assert answer.status_code in (400, 409, 422), (raw, answer.text)
        return False
    return True


async def test_no_file_name_reaches_the_file_system_and_each_is_shown_sanitised(
    api: httpx.AsyncClient, admin: Login, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    content = await video_content(api, admin)
    outside = tmp_path.parent / ESCAPE
    watched = tmp_path.parent
    before = files_under(watched)
    stored = 0

    @hypothesis.settings(max_examples=60, deadline=None, database=None)
    @given(NAMES | st.sampled_from(["", " ", "."]))
    @example(f"../../{ESCAPE}")
    @example(f"..\\..\\{ESCAPE}")
    @example(str(outside))
    @example("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0f" + ESCAPE)
    @example("\u2025/\u2025/" + ESCAPE)
    @example("lecture\u202e4pm.exe")
    @example("e\u0301\u0301\u0301.mp4")
    @example("lecture\x00.mp4")
    @example("a" * 256)
    @example("\u00e9" * 200)
    def check(raw: str) -> None:
        nonlocal stored
        shown = tus_upload(client, admin, content["id"], raw)
        if shown is not None:
            stored += 1
            assert shown == shown_name(raw), raw
        stored += multipart_upload(client, admin, content, raw)

    with httpx.Client(base_url=str(api.base_url), timeout=10) as client:
        await holds_for_every_example(check)

    uploads = settings.media_dir / "uploads"
    new = files_under(watched) - before
    in_uploads = {path for path in new if path.parent == uploads}
    # The node's outgoing mail is the only other thing it may write meanwhile.
    assert new - in_uploads <= files_under(settings.mail_dir), new - in_uploads
    assert not outside.exists()
    names = {
        str(row["id"]): row["filename"] for row in await sql(database_url, "SELECT * FROM uploads")
    }
    # Every upload stored is one file named by the server (its id), and its name is sanitised.
    assert {path.name for path in in_uploads} == set(names)
    assert len(names) == stored > 0
    for name in names.values():
        assert shown_name(name) == name
        assert "/" not in name
        assert "\\" not in name
        assert name.strip(".")
