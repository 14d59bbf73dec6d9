"""lms/store/embedded_postgres.py: the actor runs a real cluster, restarts it, and stops it."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import trio

from actors.runtime.restart import RestartPolicy
from lms.store.bridge import call, open_bridge
from lms.store.embedded_postgres import (
    TERMINAL,
    TRANSITIONS,
    EmbeddedPostgres,
    EmbeddedPostgresConfig,
    IllegalTransitionError,
    PostgresKeepsDyingError,
    PostgresState,
)
from lms.store.postgres_cluster import (
    SYSTEM_STATE_DIR,
    ClusterLockedError,
    ClusterPaths,
    PostgresCluster,
    PostgresStartError,
    find_postgres_binaries,
    leftover_pids,
    resolve_service_user,
    runnable_bin_dir,
)
from tests.services import FAST_SETTINGS, clone_cluster, scratch_dir

S = PostgresState
DEADLINE = 20
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to another user")


@pytest.fixture
def root() -> Iterator[Path]:
    """An empty root: the actor will initdb."""
    with scratch_dir("lms-test-embedded-") as directory:
        yield directory


@pytest.fixture
def cloned(root: Path, postgres_template: Path) -> Path:
    """A root holding an initialised cluster (copied: initdb is slow, and tested once)."""
    clone_cluster(postgres_template, root)
    return root


def fast_config(root: Path, **overrides: Any) -> EmbeddedPostgresConfig:
    options: dict[str, Any] = {
        "root": root,
        "initdb_sync": False,
        "settings": FAST_SETTINGS,
        "start_timeout": DEADLINE,
        "stop_grace": 5.0,
        "restart": RestartPolicy(backoff_initial=0.05),
    }
    return EmbeddedPostgresConfig(**options | overrides)


def processes_of(root: Path, state_dir: Path = SYSTEM_STATE_DIR) -> list[int]:
    paths = ClusterPaths.under(root)
    user = resolve_service_user(paths.data_dir)
    bin_dir = runnable_bin_dir(find_postgres_binaries(os.environ), user, state_dir)
    return leftover_pids(PostgresCluster(bin_dir, paths, user))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def fetchval(dsn: str, sql: str) -> Any:
    async def query() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async with open_bridge():
        return await call(query)


# --- pure: the state table -----------------------------------------------------------------


def test_every_state_is_reachable_and_only_table_moves_are_legal() -> None:
    reachable, frontier = {S.STARTING}, [S.STARTING]
    while frontier:
        for state in TRANSITIONS[frontier.pop()]:
            if state not in reachable:
                reachable.add(state)
                frontier.append(state)
    assert reachable == set(S)
    assert {S.STOPPED, S.FAILED} == TERMINAL

    actor = EmbeddedPostgres(EmbeddedPostgresConfig(root=Path("/nonexistent")))
    with pytest.raises(IllegalTransitionError, match="starting -> restarting"):
        actor._move(S.RESTARTING)


# --- a real cluster ---------------------------------------------------------------------------


async def test_initialises_and_starts_a_cluster_that_answers_queries(root: Path) -> None:
    postgres = EmbeddedPostgres(fast_config(root))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(postgres.run)
            stats = postgres.statistics()
            assert stats.state is S.READY
            assert stats.healthy
            assert stats.data_dir == root / "data"
            assert dsn == f"postgresql://postgres@127.0.0.1:{stats.port}/lms"
            assert await fetchval(dsn, "SELECT current_database()") == "lms"
            nursery.cancel_scope.cancel()
    assert postgres.statistics().state is S.STOPPED


async def test_a_sigkilled_postmaster_is_restarted(cloned: Path) -> None:
    postgres = EmbeddedPostgres(fast_config(cloned))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(postgres.run)
            first = postgres.statistics()
            assert first.pid is not None

            os.kill(first.pid, signal.SIGKILL)
            down = await postgres.wait_state(S.DOWN, S.RESTARTING)
            assert down.last_exit_code == -signal.SIGKILL
            again = await postgres.wait_until(lambda s: s.state is S.READY and s.restarts == 1)

            assert again.pid not in {None, first.pid}
            assert again.port == first.port
            assert await fetchval(dsn, "SELECT 1") == 1
            nursery.cancel_scope.cancel()


async def test_cancelling_leaves_no_postgres_process(cloned: Path) -> None:
    postgres = EmbeddedPostgres(fast_config(cloned))
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(postgres.run)
            pids = processes_of(cloned)
            postmaster = postgres.statistics().pid
            assert postmaster in pids
            nursery.cancel_scope.cancel()
    assert not alive(postmaster)
    assert processes_of(cloned) == []
    assert postgres.statistics().state is S.STOPPED
    assert postgres.statistics().pid is None


async def test_a_cluster_it_initialised_keeps_its_data_across_runs(root: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(EmbeddedPostgres(fast_config(root)).run)
            await fetchval(dsn, "CREATE TABLE kept AS SELECT 'still here' AS note")
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(EmbeddedPostgres(fast_config(root)).run)
            assert await fetchval(dsn, "SELECT note FROM kept") == "still here"
            nursery.cancel_scope.cancel()


@as_root
async def test_a_root_postgres_cannot_reach_moves_and_keeps_its_data_across_runs(
    tmp_path: Path,
) -> None:
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    wanted = private / "checkout" / ".lms" / "postgres"
    with scratch_dir("lms-test-state-") as state_dir, trio.fail_after(DEADLINE):
        first = EmbeddedPostgres(fast_config(wanted, state_dir=state_dir))
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(first.run)
            moved = first.statistics().data_dir.parent
            assert moved.parent == state_dir / "clusters"
            assert not (wanted / "data").exists()
            assert first.statistics().pid in processes_of(moved, state_dir)
            await fetchval(dsn, "CREATE TABLE kept AS SELECT 'still here' AS note")
            nursery.cancel_scope.cancel()
        assert processes_of(moved, state_dir) == []

        second = EmbeddedPostgres(fast_config(wanted, state_dir=state_dir))
        async with trio.open_nursery() as nursery:
            dsn = await nursery.start(second.run)
            assert second.statistics().data_dir == moved / "data"
            assert await fetchval(dsn, "SELECT note FROM kept") == "still here"
            nursery.cancel_scope.cancel()
        assert processes_of(moved, state_dir) == []


async def test_gives_up_when_postgres_keeps_dying(cloned: Path) -> None:
    postgres = EmbeddedPostgres(fast_config(cloned, restart=RestartPolicy(max_restarts=0)))
    with trio.fail_after(DEADLINE):
        with pytest.RaisesGroup(
            pytest.RaisesExc(PostgresKeepsDyingError, match=r"keeps dying.*postgres\.log")
        ):
            async with trio.open_nursery() as nursery:
                await nursery.start(postgres.run)
                pid = postgres.statistics().pid
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
    stats = postgres.statistics()
    assert (stats.state, stats.last_exit_code) == (S.FAILED, -signal.SIGKILL)
    assert processes_of(cloned) == []


async def test_a_failed_first_start_raises_with_the_log(cloned: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        postgres = EmbeddedPostgres(fast_config(cloned, port=port))
        with (
            trio.fail_after(DEADLINE),
            pytest.raises(PostgresStartError, match=r"(?s)could not bind"),
        ):
            await postgres.run()
    assert postgres.statistics().state is S.FAILED
    assert processes_of(cloned) == []


async def test_one_cluster_one_actor(cloned: Path) -> None:
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(EmbeddedPostgres(fast_config(cloned)).run)
            with pytest.raises(ClusterLockedError):
                await EmbeddedPostgres(fast_config(cloned)).run()
            nursery.cancel_scope.cancel()
