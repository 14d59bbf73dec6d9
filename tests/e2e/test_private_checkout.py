"""A checkout in a private directory (mode 0700, like a clone in root's home): `lms serve` still
runs its embedded PostgreSQL, says where it lives, leaves nothing behind on Ctrl-C and finds its
data again on the next run."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from lms.store.postgres_cluster import (
    SYSTEM_STATE_DIR,
    ClusterPaths,
    cluster_root,
    resolve_service_user,
)
from tests.e2e.nodes import STOP_DEADLINE, node_env, start_cli

pytestmark = pytest.mark.e2e

REPOSITORY = Path(__file__).resolve().parents[2]
DATABASE_LINE = b"database: embedded PostgreSQL in "
# What .gitignore keeps out of a clone, and git's own directory.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", ".lms", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build"
)


def processes_in(data_dir: Path) -> list[int]:
    """Pids of every process working in `data_dir`: each postgres process of a cluster does."""
    wanted = os.path.realpath(data_dir)
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/cwd") == wanted:
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile, or a kernel thread
                continue
    return pids


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The repository's files copied into a fresh 0700 directory, as `git clone` leaves them
    (no venv, no data); afterwards its cluster is gone wherever it went."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    clone = home / "lms"
    shutil.copytree(REPOSITORY, clone, ignore=NOT_IN_A_CLONE)
    wanted = clone / ".lms" / "postgres"
    moved = cluster_root(wanted, resolve_service_user(wanted / "data"))
    try:
        yield clone
    finally:
        # Only what a failed run left: a passing one stops its postgres itself.
        for pid in processes_in(ClusterPaths.under(moved).data_dir):
            os.kill(pid, signal.SIGKILL)
        if moved != wanted:
            shutil.rmtree(moved, ignore_errors=True)


async def serve(checkout: Path, log_path: Path) -> tuple[trio.Process, str, Path]:
    """Start `lms serve` from `checkout` as `make run` does (its `.lms`, no database configured);
    return the process, its URL and the data dir its banner names."""
    env = node_env(checkout / ".lms", PYTHONPATH=str(checkout))
    process, said = await start_cli("serve", env, log_path, ready=DATABASE_LINE, cwd=checkout)
    lines = said.decode().splitlines()
    url = next(line.split("listening on ", 1)[1] for line in lines if "listening on " in line)
    data_dir = said.split(DATABASE_LINE, 1)[1].split(b"\n", 1)[0].decode()
    return process, url.strip(), Path(data_dir.strip())


async def stop(process: trio.Process) -> int:
    """Ctrl-C, as at the terminal of `make run`; the exit code."""
    process.send_signal(signal.SIGINT)
    with trio.fail_after(STOP_DEADLINE):
        code = await process.wait()
    assert process.stdout is not None
    await process.stdout.aclose()
    return code


async def test_a_node_started_from_a_private_checkout_serves_and_keeps_its_data(
    checkout: Path, tmp_path: Path
) -> None:
    learner = {"email": "private@learner.org", "password": "private-learner-1", "name": "P"}

    process, url, data_dir = await serve(checkout, tmp_path / "first.log")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/health")).status_code == 200
            registered = await client.post("/api/v1/auth/register", json=learner)
            assert registered.status_code == 202
        assert processes_in(data_dir) != []
    finally:
        assert await stop(process) == 0
    assert processes_in(data_dir) == []

    if os.geteuid() == 0:
        # PostgreSQL's user cannot reach the checkout: the cluster lives under the state dir.
        assert data_dir.parent.parent == SYSTEM_STATE_DIR / "clusters"
        st = data_dir.parent.stat()
        assert st.st_uid != 0
        assert st.st_mode & 0o777 == 0o700
    else:
        assert data_dir == checkout / ".lms" / "postgres" / "data"

    process, url, again = await serve(checkout, tmp_path / "second.log")
    try:
        assert again == data_dir
        login = {"email": learner["email"], "password": learner["password"]}
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/api/v1/auth/login", json=login)).status_code == 200
    finally:
        assert await stop(process) == 0
    assert processes_in(data_dir) == []
