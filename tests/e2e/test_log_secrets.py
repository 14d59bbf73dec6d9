"""No secret a node handles reaches its log: a real node logging everything (JSON, debug level)
is driven through every flow that carries one (passwords, access and refresh tokens, a reset
token, signed media URLs, an unsubscribe token, a WebSocket's auth frame, a tus upload, wrong
passwords and bad tokens), and its whole stderr is then searched for each value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from lms.domain.media_urls import derived_key
from media.synthetic import write_clip
from tests.e2e.admins import ADMIN, Admin, create_admin, signed_in
from tests.e2e.nodes import SECRET, database_node_env, log_events, start_node
from tests.live_client import NOTIFICATIONS, live_socket, ws_url
from tests.polling import eventually
from tests.reset_mail import mails_in, reset_link

pytestmark = pytest.mark.e2e

POLICY_VIOLATION = 1008

EMAIL = "grace@example.org"
PASSWORD = "first-password-Kx7Qm2Vb"
WRONG_PASSWORD = "wrong-password-Zr4Tn8Lc"
NEW_PASSWORD = "second-password-Hp3Wd9Fs"
BAD_TOKEN = "eyJub3QiOiJhIHRva2VuIn0.bad-token-Jq6Yv1Ge.c2lnbmF0dXJl"
MAIL_DEADLINE = 30.0  # registration and reset requests leave their mail to the Mailer's poll (5 s)
# A signed media URL: /media/<kid>/<signature>/<expires>/<file set>/<file>.
_SIGNED = re.compile(r"/media/[a-z0-9]+/([A-Za-z0-9_\-]+)/\d+/")
_UNSUBSCRIBE = re.compile(r"/unsubscribe\?token=([^\s>\"']+)")

# The access line of each flow: (method, route template, status).
ACCESS_LINES = {
    ("POST", "/api/v1/auth/register", 202),
    ("POST", "/api/v1/auth/login", 401),
    ("POST", "/api/v1/auth/login", 200),
    ("GET", "/api/v1/users/me", 200),
    ("GET", "/api/v1/users/me", 401),
    ("POST", "/api/v1/auth/refresh", 200),
    ("POST", "/api/v1/auth/refresh", 401),
    ("POST", "/api/v1/auth/logout", 204),
    ("POST", "/api/v1/auth/password-reset", 202),
    ("GET", "/reset-password", 200),
    ("POST", "/api/v1/auth/password-reset/confirm", 204),
    ("POST", "/api/v1/auth/password-reset/confirm", 410),
    ("GET", "/unsubscribe", 200),
    ("POST", "/unsubscribe", 200),
    ("POST", "/api/v1/uploads", 201),
    ("PATCH", "/api/v1/uploads/<uuid:upload_id>", 204),
    ("GET", "/media", 200),
    ("GET", "/media", 403),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", seconds=1.0)


class Secrets:
    """Every secret value the test saw, with what it was, to search the log for."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, what: str, value: str) -> None:
        assert len(value) >= 8, f"{what} is too short to search for"
        self.values[value] = what

    def add_token(self, what: str, token: str) -> None:
        """A token, and its signature on its own when it has parts (a JWT's third): a log that
        cut the token short or split it would still show that."""
        self.add(what, token)
        if "." in token:
            self.add(f"{what} (signature)", token.rsplit(".", 1)[1])

    def add_pair(self, pair: dict[str, Any]) -> None:
        self.add_token("an access token", pair["access_token"])
        self.add_token("a refresh token", pair["refresh_token"])

    def found_in(self, text: str) -> Iterator[str]:
        for value, what in self.values.items():
            if value in text:
                yield what


async def test_a_node_logs_no_password_token_signature_or_key_it_handles(
    database_url: str, tmp_path: Path, clip: Path
) -> None:
    env = database_node_env(
        tmp_path,
        database_url,
        LMS_LOG_LEVEL="debug",
        # Every unit of database work logs slow_sql, so its lines are searched too.
        LMS_SLOW_SQL_MS="1",
        LMS_TRANSCODE_WORKERS="1",
    )
    secrets = Secrets()
    secrets.add("the secret key", SECRET)
    secrets.add("the media key", derived_key(SECRET).secret)
    secrets.add("the admin's password", ADMIN[1])
    secrets.add("a password", PASSWORD)
    secrets.add("a wrong password", WRONG_PASSWORD)
    secrets.add("a new password", NEW_PASSWORD)
    secrets.add("a bad token", BAD_TOKEN)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_admin, env)
        node = await start_node(env, tmp_path / "node.log")
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
        registered = await api.post(
            "/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD, "name": "Grace"}
        )
        assert registered.status_code == 202, registered.text
        # Asked now, so its mail and the welcome mail go out together while the rest runs.
        asked = await api.post("/api/v1/auth/password-reset", json={"email": EMAIL})
        assert asked.status_code == 202
        await _sign_in_use_refresh_and_log_out(api, node.url, secrets)
        welcome, reset = await _welcome_and_reset_mail(tmp_path / "data" / "mail")
        await _unsubscribe(api, welcome, secrets)
        await _reset_password(api, reset, secrets)
    async with signed_in(node.url) as admin:
        secrets.add_token("the admin's access token", admin.auth["Authorization"].split()[1])
        await _upload_and_play(admin, clip, secrets)

    assert await node.stop() == 0
    log = node.log()
    leaked = sorted(set(secrets.found_in(log)))
    assert not leaked, f"the node's log holds {', '.join(leaked)}"
    assert all(line.startswith("{") for line in log.splitlines()), "every line is a JSON event"
    events = log_events(log)
    answered = {(e["method"], e["route"], e["status"]) for e in events if e["event"] == "request"}
    assert answered >= ACCESS_LINES, ACCESS_LINES - answered
    sockets = [(e["event"], e["endpoint"]) for e in events if e["event"].startswith("websocket_")]
    assert sockets.count(("websocket_closed", NOTIFICATIONS)) == 2, sockets
    slow = [e["function"] for e in events if e["event"] == "slow_sql"]
    assert slow, "LMS_SLOW_SQL_MS=1 reaches the node's database"
    assert all(function.startswith("lms.store.") for function in slow), slow


async def _sign_in_use_refresh_and_log_out(
    api: httpx.AsyncClient, url: str, secrets: Secrets
) -> None:
    """A wrong password, then the right one; the access token on a request and in a live
    socket's auth frame; the refresh token exchanged; bad tokens of each kind; logging out."""
    wrong = await api.post("/api/v1/auth/login", json={"email": EMAIL, "password": WRONG_PASSWORD})
    assert wrong.status_code == 401
    first = await _login(api, PASSWORD, secrets)
    me = await api.get("/api/v1/users/me", headers=_bearer(first["access_token"]))
    assert me.status_code == 200
    refreshed = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200
    second = refreshed.json()
    secrets.add_pair(second)
    bad_refresh = await api.post("/api/v1/auth/refresh", json={"refresh_token": BAD_TOKEN})
    assert bad_refresh.status_code == 401
    bad_bearer = await api.get("/api/v1/users/me", headers=_bearer(BAD_TOKEN))
    assert bad_bearer.status_code == 401
    async with live_socket(url, NOTIFICATIONS, second["access_token"]) as live:
        assert live.welcome["type"] == "welcome"
    await _refused_socket(url, BAD_TOKEN)
    logout = await api.post("/api/v1/auth/logout", headers=_bearer(second["access_token"]))
    assert logout.status_code == 204


async def _welcome_and_reset_mail(mail_dir: Path) -> tuple[EmailMessage, EmailMessage]:
    async def mails() -> list[EmailMessage]:
        return mails_in(mail_dir)

    found = await eventually(mails, lambda found: len(found) == 2, within=MAIL_DEADLINE)
    [welcome] = [mail for mail in found if mail["List-Unsubscribe"]]
    [reset] = [mail for mail in found if not mail["List-Unsubscribe"]]
    return welcome, reset


async def _unsubscribe(api: httpx.AsyncClient, welcome: EmailMessage, secrets: Secrets) -> None:
    """The welcome mail's signed unsubscribe link: its page, then its one-click POST."""
    found = _UNSUBSCRIBE.search(welcome["List-Unsubscribe"])
    assert found is not None, welcome["List-Unsubscribe"]
    token = unquote(found.group(1))
    secrets.add_token("an unsubscribe token", token)
    page = await api.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200
    done = await api.post("/unsubscribe", params={"token": token})
    assert done.status_code == 200


async def _reset_password(api: httpx.AsyncClient, reset: EmailMessage, secrets: Secrets) -> None:
    """The mailed link's page (also as a client that puts the token in the query rather than
    the fragment), the confirmation with a new password, a second use, a sign-in with it."""
    link, token = reset_link(reset)
    secrets.add_token("a reset token", token)
    parts = urlsplit(link)
    opened = await api.get(parts.path, params={"token": token})
    assert opened.status_code == 200
    for expected in (204, 410):
        confirmed = await api.post(
            "/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert confirmed.status_code == expected, confirmed.text
    await _login(api, NEW_PASSWORD, secrets)


async def _upload_and_play(admin: Admin, clip: Path, secrets: Secrets) -> None:
    """A tus upload with metadata, transcoded; a signed URL of its manifest fetched as it is
    and with a forged signature."""
    _, manifest = await admin.publish(clip)
    signatures = set(_SIGNED.findall(str(manifest)))
    assert signatures, manifest
    for signature in signatures:
        secrets.add("a media URL's signature", signature)
    url = manifest["renditions"][0]["url"]
    assert (await admin.client.get(url)).status_code == 200
    [signature] = _SIGNED.findall(url)
    forged = url.replace(signature, "A" * len(signature))
    assert (await admin.client.get(forged)).status_code == 403


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(api: httpx.AsyncClient, password: str, secrets: Secrets) -> dict[str, Any]:
    response = await api.post("/api/v1/auth/login", json={"email": EMAIL, "password": password})
    assert response.status_code == 200, response.text
    pair = response.json()
    secrets.add_pair(pair)
    return pair


async def _refused_socket(url: str, token: str) -> None:
    """A socket whose auth frame carries `token` is closed (policy violation) unwelcomed."""
    async with open_websocket_url(ws_url(url, NOTIFICATIONS)) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        received = []
        with trio.fail_after(10):
            try:
                while True:
                    received.append(await ws.get_message())
            except ConnectionClosed as closed:
                reason = closed.reason
    assert not [frame for frame in received if '"welcome"' in frame]
    assert reason is not None
    assert reason.code == POLICY_VIOLATION
