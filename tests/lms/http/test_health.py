"""Liveness (`/health`) answers from memory; readiness (`/api/v1/monitoring/health`) asks every
component, so a load balancer can tell a busy node from a broken one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from lms.config import Settings
from tests.services import RunningPostgres, own_postgres


async def test_a_healthy_node_reports_its_database_and_redis(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/monitoring/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {c["name"]: c["ok"] for c in body["components"]} == {
        "database": True,
        "actors": True,
        "redis": True,
    }
    assert response.headers["X-Request-ID"]


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
