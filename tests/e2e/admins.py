"""The admin that end-to-end tests create on a node with `lms createadmin`, and sign in as."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio
from tusclient.client import TusClient

from tests.e2e.nodes import run_cli
from tests.polling import eventually

ADMIN = ("ops@school.org", "admin-password")


@dataclass
class Admin:
    client: httpx.AsyncClient
    auth: dict[str, str]

    async def reconnect(self, url: str) -> None:
        """Talk to another node (its tokens are valid on every node of the database)."""
        await self.client.aclose()
        self.client = httpx.AsyncClient(base_url=url, timeout=10)

    async def video_content(self) -> int:
        course = await self.client.post("/api/v1/courses", json={"title": "C"}, headers=self.auth)
        content = await self.client.post(
            f"/api/v1/courses/{course.json()['id']}/contents",
            json={"title": "Lecture", "kind": "video"},
            headers=self.auth,
        )
        return content.json()["id"]

    async def manifest(self, content_id: int) -> dict:
        response = await self.client.get(
            f"/api/v1/stream/video/{content_id}/manifest", headers=self.auth
        )
        return response.json()

    async def ready(self, content_id: int) -> dict:
        manifest = await eventually(
            lambda: self.manifest(content_id),
            lambda m: m.get("status") in ("ready", "failed"),
            within=60,
        )
        assert manifest["status"] == "ready", manifest
        return manifest

    async def publish(self, clip: Path) -> tuple[int, dict]:
        """A new video content with `clip` uploaded (tus, through whatever `client` talks to)
        and transcoded: its id and ready manifest."""
        content_id = await self.video_content()
        uploader = TusClient(f"{self.client.base_url}/api/v1/uploads", headers=self.auth)
        upload = uploader.uploader(
            file_path=str(clip),
            metadata={"content_id": str(content_id), "filename": clip.name},
            retries=0,
        )
        await trio.to_thread.run_sync(upload.upload)
        return content_id, await self.ready(content_id)

    async def job_of(self, content_id: int) -> dict:
        jobs = (await self.client.get("/api/v1/jobs", headers=self.auth)).json()
        return next(j for j in jobs if j["content_id"] == content_id)

    async def running(self, content_id: int) -> dict:
        return await eventually(lambda: self.job_of(content_id), lambda j: j["state"] == "running")


async def create_admin(env: Mapping[str, str]) -> None:
    created = await run_cli("createadmin", "--email", ADMIN[0], "--password", ADMIN[1], env=env)
    assert created.returncode == 0, created.stderr.decode()


@asynccontextmanager
async def signed_in(url: str) -> AsyncIterator[Admin]:
    admin = Admin(httpx.AsyncClient(base_url=url, timeout=10), {})
    try:
        login = await admin.client.post(
            "/api/v1/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}
        )
        admin.auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        yield admin
    finally:
        await admin.client.aclose()
