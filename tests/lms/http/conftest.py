"""A real node per test, in this test's trio run, on a free loopback port, with its own database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from lms import commands
from lms.config import Settings
from lms.node import serve
from tests.e2e.nodes import LOOPBACK_RATE_LIMITS

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Login:
    user_id: int
    email: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def node_settings(database_url: str, redis_url: str, data_dir: Path, **env: str) -> Settings:
    """The settings of a test's in-process node; `env` adds or overrides LMS_* variables."""
    return Settings.from_env(
        {
            "LMS_DATABASE_URL": database_url,
            "LMS_REDIS_URL": redis_url,
            "LMS_SECRET_KEY": SECRET,
            "LMS_PORT": "0",
            "LMS_DATA_DIR": str(data_dir),
            "LMS_SEED_DEMO": "false",
            "LMS_DB_POOL_MIN": "1",
            "LMS_DB_POOL_MAX": "4",
            "LMS_MAX_BODY_BYTES": str(64 * 1024),
            "LMS_RATE_LIMITS": LOOPBACK_RATE_LIMITS,
        }
        | env
    )


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return node_settings(database_url, redis_url, tmp_path)


@pytest.fixture
async def node(nursery: trio.Nursery, settings: Settings) -> str:
    return await nursery.start(serve, settings)


@pytest.fixture
async def api(node: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node, timeout=10) as client:
        yield client


async def register(
    api: httpx.AsyncClient, email: str, name: str = "Test User", password: str = PASSWORD
) -> None:
    """Ask for an account. The answer (202) is the same whether or not the address had one, and
    carries no id: `log_in` reads it from `GET /api/v1/users/me`."""
    response = await api.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 202, response.text


async def sign_up(api: httpx.AsyncClient, email: str, name: str = "Test User") -> Login:
    await register(api, email, name)
    return await log_in(api, email)


async def log_in(api: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Login:
    response = await api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = await api.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    return Login(me.json()["id"], email, tokens["access_token"], tokens["refresh_token"])


@pytest.fixture
async def admin(settings: Settings, api: httpx.AsyncClient) -> Login:
    await commands.create_admin(settings, "admin@test.lms", PASSWORD)
    return await log_in(api, "admin@test.lms")


async def make_instructor(api: httpx.AsyncClient, admin: Login, email: str) -> Login:
    user = await sign_up(api, email)
    response = await api.patch(
        f"/api/v1/users/{user.user_id}", json={"role": "instructor"}, headers=admin.auth
    )
    assert response.status_code == 200, response.text
    return await log_in(api, email)  # a new token carries the new role


@pytest.fixture
async def instructor(api: httpx.AsyncClient, admin: Login) -> Login:
    return await make_instructor(api, admin, "teacher@test.lms")


@pytest.fixture
async def learner(api: httpx.AsyncClient) -> Login:
    return await sign_up(api, "learner@test.lms")
