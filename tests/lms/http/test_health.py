"""Liveness (`/health`) answers from memory; readiness (`/api/v1/monitoring/health`) asks every
component, so a load balancer can tell a busy node from a broken one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio

from lms.config import Settings
from media import synthetic
from tests.lms.http.conftest import Login
from tests.polling import eventually
from tests.services import RunningPostgres, own_postgres
from tests.sql import sql


async def test_a_healthy_node_reports_its_database_redis_media_volume_and_transcoder(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    response = await api.get("/api/v1/monitoring/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    components = {c["name"]: c for c in body["components"]}
    assert {name: c["ok"] for name, c in components.items()} == {
        "database": True,
        "actors": True,
        "media": True,
        "redis": True,
        "transcoder": True,
    }
    assert response.headers["X-Request-ID"]
    free = os.statvfs(settings.media_dir)
    assert components["media"]["detail"].endswith(f"bytes free, at least {1 << 30} needed")
    # The figure is the volume's own (it moves a little while the test runs).
    said = int(components["media"]["detail"].split()[0])
    assert abs(said - free.f_bavail * free.f_frsize) < 1 << 26
    slots = settings.transcode_workers
    assert components["transcoder"]["detail"] == (
        f"0 of {slots} workers busy; 0 attempts retried, 0 failed"
    )


async def test_liveness_names_the_node_and_checks_nothing(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "node_id": settings.node_id, "components": []}


class TestWithTheDatabaseDown:
    """A node whose PostgreSQL (its own, for this test) stops while it serves."""

    @pytest.fixture
    def postgres(self, postgres_template: Path) -> Iterator[RunningPostgres]:
        with own_postgres(postgres_template, "lms-test-health-") as running:
            yield running

    @pytest.fixture
    def database_url(self, postgres: RunningPostgres) -> str:
        return postgres.dsn

    async def test_liveness_still_answers_and_readiness_says_why_not(
        self, api: httpx.AsyncClient, postgres: RunningPostgres
    ) -> None:
        assert (await api.get("/api/v1/monitoring/health")).status_code == 200
        await trio.to_thread.run_sync(postgres.stop)

        alive = await api.get("/health")
        assert alive.status_code == 200
        assert alive.json()["status"] == "ok"

        ready = await api.get("/api/v1/monitoring/health")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        database = next(c for c in body["components"] if c["name"] == "database")
        assert database["ok"] is False
        assert "unavailable" in database["detail"]


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` as a volume mounted read-only looks: nothing can be created in it. Root
    writes through mode bits, so as root the directory is also made immutable (chattr +i),
    which stops root too."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o500)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(0o700)


def media(body: dict) -> dict:
    return next(c for c in body["components"] if c["name"] == "media")


class TestWithAReadOnlyMediaVolume:
    @pytest.fixture
    def settings(self, settings: Settings) -> Iterator[Settings]:
        with read_only(settings.media_dir):
            yield settings

    async def test_readiness_fails_naming_the_media_volume(
        self, api: httpx.AsyncClient, settings: Settings
    ) -> None:
        with pytest.raises(PermissionError):
            (settings.media_dir / "upload").touch()  # the volume really refuses writes

        ready = await api.get("/api/v1/monitoring/health")

        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert [c["name"] for c in body["components"] if not c["ok"]] == ["media"]
        assert media(body)["state"] == "not_writable"
        assert str(settings.media_dir) in media(body)["detail"]
        assert list(settings.media_dir.iterdir()) == []
        assert (await api.get("/health")).status_code == 200  # alive all the same


class TestWithTooLittleSpaceOnTheMediaVolume:
    # More than any disk here has free: 1 PiB.
    THRESHOLD = 1 << 50

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, media_min_free_bytes=self.THRESHOLD)

    async def test_readiness_fails_saying_how_much_is_free_and_needed(
        self, api: httpx.AsyncClient, settings: Settings
    ) -> None:
        ready = await api.get("/api/v1/monitoring/health")

        assert ready.status_code == 503
        component = media(ready.json())
        assert (component["ok"], component["state"]) == (False, "low_space")
        free, _, needed = component["detail"].partition(" bytes free, at least ")
        assert 0 < int(free) < self.THRESHOLD
        assert needed == f"{self.THRESHOLD} needed"
        # Nothing is left behind by the probe.
        assert [p.name for p in settings.media_dir.iterdir()] == []


def transcoder(body: dict) -> dict:
    return next(c for c in body["components"] if c["name"] == "transcoder")


class TestWithATranscodeWorker:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return replace(settings, transcode_workers=1)

    async def test_a_killed_worker_is_replaced_by_the_retry_and_the_node_is_ready_again(
        self, api: httpx.AsyncClient, settings: Settings, database_url: str, instructor: Login
    ) -> None:
        course = await api.post(
            "/api/v1/courses", json={"title": "Optics"}, headers=instructor.auth
        )
        content = await api.post(
            f"/api/v1/courses/{course.json()['id']}/contents",
            json={"title": "Lenses", "kind": "video"},
            headers=instructor.auth,
        )
        # Long enough to be killed mid-transcode; queued as a finished upload queues it.
        uploads = settings.media_dir / "uploads"
        uploads.mkdir(parents=True)
        await trio.to_thread.run_sync(
            lambda: synthetic.write_clip(uploads / "long.mp4", seconds=30.0, fps=15)
        )
        await sql(
            database_url,
            "INSERT INTO jobs (content_id, uploader_id, source, max_attempts) "
            "VALUES ($1, $2, 'uploads/long.mp4', 3)",
            content.json()["id"],
            instructor.user_id,
        )

        async def ready() -> httpx.Response:
            return await api.get("/api/v1/monitoring/health")

        busy = await eventually(ready, lambda r: "pid " in transcoder(r.json())["detail"])
        assert busy.status_code == 200
        assert transcoder(busy.json())["detail"].startswith("1 of 1 workers busy: pid ")
        [pid] = map(int, re.findall(r"pid (\d+)", transcoder(busy.json())["detail"]))

        os.kill(pid, signal.SIGKILL)

        # The attempt fails, the job goes back to the queue, and a new worker takes it.
        again = await eventually(
            ready, lambda r: "1 attempts retried" in transcoder(r.json())["detail"]
        )
        assert again.status_code == 200
        component = transcoder(again.json())
        assert (component["ok"], component["state"]) == (True, "ok")
        assert f"pid {pid} " not in component["detail"]
        assert component["detail"].endswith("1 attempts retried, 0 failed")
