"""The `lms` commands an operator runs, with the messages they print when something is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.nodes import SECRET, node_env, run_cli

pytestmark = pytest.mark.e2e


async def test_migrate_brings_an_empty_database_up_to_date_and_is_idempotent(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = node_env(tmp_path, LMS_DATABASE_URL=empty_database_url, LMS_SECRET_KEY=SECRET)
    for _ in range(2):
        result = await run_cli("migrate", env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert b"up to date" in result.stdout


async def test_bad_settings_are_listed_and_nothing_starts(tmp_path: Path) -> None:
    env = node_env(tmp_path, LMS_PORT="http", LMS_REDIS_URL="localhost:6379", LMS_LOG_LEVEL="x")
    result = await run_cli("serve", env=env)
    assert result.returncode == 2
    message = result.stderr.decode()
    for name in ("LMS_PORT", "LMS_REDIS_URL", "LMS_LOG_LEVEL"):
        assert name in message
    assert "Traceback" not in message


async def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = node_env(
        tmp_path, LMS_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", LMS_SECRET_KEY=SECRET
    )
    result = await run_cli("migrate", env=env)
    assert result.returncode == 1
    message = result.stderr.decode()
    assert "cannot connect to PostgreSQL" in message
    assert "Traceback" not in message


async def test_createadmin_rejects_a_weak_password(database_url: str, tmp_path: Path) -> None:
    env = node_env(tmp_path, LMS_DATABASE_URL=database_url, LMS_SECRET_KEY=SECRET)
    result = await run_cli("createadmin", "--email", "a@b.org", "--password", "short", env=env)
    assert result.returncode == 1
    assert b"password" in result.stderr


async def test_createadmin_rejects_a_common_password(database_url: str, tmp_path: Path) -> None:
    env = node_env(tmp_path, LMS_DATABASE_URL=database_url, LMS_SECRET_KEY=SECRET)
    result = await run_cli(
        "createadmin", "--email", "a@b.org", "--password", "password1234", env=env
    )
    assert result.returncode == 1
    assert b"too easy to guess" in result.stderr
    assert b"Traceback" not in result.stderr
