"""The node's embedded PostgreSQL: an actor that runs a postmaster as its child and keeps it up.

Used when no `LMS_DATABASE_URL` is configured. The cluster lives under one root directory, or,
as root when PostgreSQL's user cannot reach that, in one of its own under the system state dir
(see `lms/store/postgres_cluster.py` for the layout, the service user, where the cluster goes and
the lock; `statistics().data_dir` says where it went):

    postgres = EmbeddedPostgres(EmbeddedPostgresConfig(root=settings.data_dir / "postgres"))
    dsn = await nursery.start(postgres.run)   # returns once the database accepts connections

Theory of operation. `run` places the cluster, takes its lock, initdb's on first use and stops
whatever a dead previous owner left running, then loops: start the postmaster, wait until its
`postmaster.pid` says "ready", wait for it to exit. An exit we did not ask for is a crash: the
state goes `down`, the cluster's orphans are killed, and after a backoff the postmaster is
started again on the same port (so the DSN handed out stays valid); more than
`RestartPolicy.max_restarts` crashes within `RestartPolicy.within` seconds raise
`PostgresKeepsDyingError`. Cancellation is the only way to stop it: a fast shutdown (SIGINT),
SIGKILL after `stop_grace` seconds, then a sweep for any process still working in the data dir.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog
import trio

from actors.runtime.restart import CrashHistory, RestartPolicy
from lms.store.postgres_cluster import (
    SYSTEM_STATE_DIR,
    ClusterInfo,
    ClusterPaths,
    PostgresCluster,
    PostgresClusterError,
    PostgresStartError,
    cluster_info,
    ensure_database_call,
    find_postgres_binaries,
    is_ready,
    lock_cluster,
    log_tail,
    open_log,
    pick_free_port,
    place_cluster,
    postgres_command,
    prepare_cluster,
    read_postmaster_status,
    recover,
    server_env,
    start_failure,
)

# How often to look at postmaster.pid while it starts: PostgreSQL has no readiness callback,
# and a first start takes tens of milliseconds.
_READY_POLL: Final = 0.01
# Slower than an actor's: a start after a crash replays WAL, and a crash loop here means the disk
# or the configuration is wrong, which retrying fast will not fix.
POSTGRES_RESTARTS: Final = RestartPolicy(
    max_restarts=5, within=300.0, backoff_initial=0.5, backoff_max=30.0
)


class PostgresState(enum.Enum):
    STARTING = "starting"  # first start: initdb, postmaster not yet accepting connections
    READY = "ready"  # accepting connections
    DOWN = "down"  # died unexpectedly; waiting out the backoff before a restart
    RESTARTING = "restarting"  # started again, not yet accepting connections
    STOPPING = "stopping"  # cancelled: shutting the postmaster down
    STOPPED = "stopped"  # shut down; nothing of it runs
    FAILED = "failed"  # gave up (or could not start at all); `run` raised


_S = PostgresState
TRANSITIONS: Final[Mapping[PostgresState, frozenset[PostgresState]]] = {
    _S.STARTING: frozenset({_S.READY, _S.STOPPING, _S.FAILED}),
    _S.READY: frozenset({_S.DOWN, _S.STOPPING, _S.FAILED}),
    _S.DOWN: frozenset({_S.RESTARTING, _S.STOPPING, _S.FAILED}),
    _S.RESTARTING: frozenset({_S.READY, _S.DOWN, _S.STOPPING, _S.FAILED}),
    _S.STOPPING: frozenset({_S.STOPPED, _S.FAILED}),
    _S.STOPPED: frozenset(),
    _S.FAILED: frozenset(),
}
TERMINAL: Final = frozenset(state for state, moves in TRANSITIONS.items() if not moves)


class IllegalTransitionError(RuntimeError):
    """A move the transition table does not allow: a bug in the actor."""


class PostgresKeepsDyingError(PostgresClusterError):
    """The postmaster crashed more often than the restart policy allows."""


class EmbeddedPostgresStoppedError(PostgresClusterError):
    """Waited for a state the actor can no longer reach: it has stopped or failed."""


@dataclass(frozen=True)
class EmbeddedPostgresConfig:
    """Everything the actor needs; the defaults are the node's production embedded default."""

    root: Path
    # 0 picks a free loopback port once; restarts keep it, so the DSN stays valid.
    port: int = 0
    database: str = "lms"
    # initdb's fsync of the new cluster; only throwaway clusters (tests) should turn it off.
    initdb_sync: bool = True
    settings: Mapping[str, str] = field(default_factory=dict)
    # Generous: a start after a crash replays WAL first.
    start_timeout: float = 120.0
    stop_grace: float = 10.0
    restart: RestartPolicy = POSTGRES_RESTARTS
    # None: `find_postgres_binaries(os.environ)`.
    bin_dir: Path | None = None
    # As root, where the cluster and a copy of the binaries go when PostgreSQL's user cannot
    # reach them in place.
    state_dir: Path = SYSTEM_STATE_DIR


@dataclass(frozen=True)
class PostgresStatistics:
    """A snapshot for health checks and metrics."""

    state: PostgresState
    pid: int | None
    port: int | None
    restarts: int
    last_exit_code: int | None
    # Where the cluster lives: under the configured root, or where `run` moved it.
    data_dir: Path
    log_file: Path

    @property
    def healthy(self) -> bool:
        return self.state is PostgresState.READY


class EmbeddedPostgres:
    """Runs and supervises one PostgreSQL cluster for as long as `run` runs."""

    def __init__(self, config: EmbeddedPostgresConfig) -> None:
        self._config = config
        self._paths = ClusterPaths.under(config.root)
        self._state = PostgresState.STARTING
        self._pid: int | None = None
        self._port: int | None = None
        self._restarts = 0
        self._last_exit_code: int | None = None
        self._changed = trio.Event()
        self._log = structlog.get_logger().bind(actor="embedded_postgres")

    # --- observing ------------------------------------------------------------------------------

    def statistics(self) -> PostgresStatistics:
        return PostgresStatistics(
            state=self._state,
            pid=self._pid,
            port=self._port,
            restarts=self._restarts,
            last_exit_code=self._last_exit_code,
            data_dir=self._paths.data_dir,
            log_file=self._paths.log_file,
        )

    async def wait_until(
        self, predicate: Callable[[PostgresStatistics], bool]
    ) -> PostgresStatistics:
        """Wait until `predicate(statistics())` holds and return that snapshot.

        Raise `EmbeddedPostgresStoppedError` if the actor stops or fails first. No deadline of its
        own: callers wrap it in `trio.fail_after`.
        """
        while True:
            stats = self.statistics()
            if predicate(stats):
                return stats
            if stats.state in TERMINAL:
                raise EmbeddedPostgresStoppedError(f"embedded PostgreSQL is {stats.state.value}")
            await self._changed.wait()

    async def wait_state(self, *states: PostgresState) -> PostgresStatistics:
        """Wait until the state is one of `states` (see `wait_until`)."""
        return await self.wait_until(lambda stats: stats.state in states)

    def _move(self, state: PostgresState) -> None:
        if state not in TRANSITIONS[self._state]:
            raise IllegalTransitionError(f"{self._state.value} -> {state.value}")
        self._state = state
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    # --- running --------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Run PostgreSQL until cancelled; `task_status.started(dsn)` once it accepts connections.

        The DSN names `config.database`, created on first start. Raise `PostgresClusterError`
        (subclasses: `ClusterLockedError`, `DirectoryNotTraversableError`, `PostgresStartError`
        when the first start fails, `PostgresKeepsDyingError`) instead of running; on the way
        out, by cancellation or error, no postgres process of this cluster is left running.
        """
        cluster: PostgresCluster | None = None
        try:
            self._paths = await trio.to_thread.run_sync(
                place_cluster, self._config.root, self._config.state_dir
            )
            if self._paths != ClusterPaths.under(self._config.root):
                # Its user cannot reach the configured root (see `place_cluster`).
                self._log.info(
                    "postgres_moved",
                    configured=str(self._config.root.absolute()),
                    data_dir=str(self._paths.data_dir),
                )
            with lock_cluster(self._paths):
                try:
                    cluster = await trio.to_thread.run_sync(self._prepare)
                    await self._supervise(cluster, task_status)
                finally:
                    if cluster is not None:
                        with trio.CancelScope(shield=True):
                            await trio.to_thread.run_sync(recover, cluster, self._config.stop_grace)
        except Exception:
            if self._state is not PostgresState.FAILED:
                self._move(PostgresState.FAILED)
            raise
        finally:
            if self._state is not PostgresState.FAILED:
                if self._state is not PostgresState.STOPPING:
                    self._move(PostgresState.STOPPING)
                self._pid = None
                self._move(PostgresState.STOPPED)
                self._log.info("postgres_stopped", data_dir=str(self._paths.data_dir))

    def _prepare(self) -> PostgresCluster:
        # Runs in a worker thread: initdb takes a second or more.
        config = self._config
        bin_dir = config.bin_dir or find_postgres_binaries(os.environ)
        cluster = prepare_cluster(
            bin_dir, self._paths, sync=config.initdb_sync, state_dir=config.state_dir
        )
        leftovers = recover(cluster, config.stop_grace)
        if leftovers:
            self._log.warning("postgres_leftovers_stopped", pids=leftovers)
        self._port = config.port or pick_free_port()
        return cluster

    async def _supervise(self, cluster: PostgresCluster, task_status: trio.TaskStatus[str]) -> None:
        assert self._port is not None  # noqa: S101 - narrows the type: set before supervising
        info = cluster_info(cluster, self._port)
        crashes = CrashHistory(self._config.restart)
        while True:
            try:
                exit_code: int | None = await self._serve_once(cluster, info, task_status)
            except PostgresStartError as exc:
                if self._state is PostgresState.STARTING:
                    raise
                exit_code = exc.exit_code
            self._on_died(exit_code)
            await trio.to_thread.run_sync(recover, cluster, self._config.stop_grace)
            delay = crashes.record(trio.current_time())
            if delay is None:
                raise PostgresKeepsDyingError(
                    f"PostgreSQL keeps dying: {len(crashes)} crashes within "
                    f"{self._config.restart.within:g} s (last exit status {exit_code}), giving "
                    f"up. Its log is {info.log_file}; it ends with:\n{log_tail(info.log_file)}"
                )
            self._log.info("postgres_restarting", delay=delay, restarts=self._restarts + 1)
            await trio.sleep(delay)
            self._restarts += 1
            self._move(PostgresState.RESTARTING)

    def _on_died(self, exit_code: int | None) -> None:
        self._log.error(
            "postgres_died",
            pid=self._pid,
            exit_code=exit_code,
            log_file=str(self._paths.log_file),
            log_tail=log_tail(self._paths.log_file, lines=5),
        )
        self._pid = None
        self._last_exit_code = exit_code
        self._move(PostgresState.DOWN)

    async def _serve_once(
        self, cluster: PostgresCluster, info: ClusterInfo, task_status: trio.TaskStatus[str]
    ) -> int:
        """Start the postmaster, report it ready, and return its exit status once it exits."""
        paths, settings = cluster.paths, self._config.settings
        command = postgres_command(
            cluster.bin_dir, paths.data_dir, info.port, info.socket_dir, settings
        )
        started_at = trio.current_time()
        with open_log(cluster) as log:
            process = await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=server_env(os.environ),
                # Its own session: a Ctrl-C at the terminal reaches the node, which then stops
                # postgres itself, instead of postgres dying under it as if it had crashed.
                start_new_session=True,
                **cluster.user.process_options(),
            )
        try:
            await self._wait_until_ready(cluster, process)
            self._pid = process.pid
            if self._state is PostgresState.STARTING:
                await self._ensure_database(cluster, info)
                self._move(PostgresState.READY)
                task_status.started(info.dsn(self._config.database))
            else:
                self._move(PostgresState.READY)
            self._log.info(
                "postgres_started",
                pid=process.pid,
                port=info.port,
                restarts=self._restarts,
                seconds=round(trio.current_time() - started_at, 3),
            )
            return await process.wait()
        except trio.Cancelled:
            if self._state is not PostgresState.STOPPING:
                self._move(PostgresState.STOPPING)
            raise
        finally:
            if process.returncode is None:
                with trio.CancelScope(shield=True):
                    await self._terminate(process)

    async def _wait_until_ready(self, cluster: PostgresCluster, process: trio.Process) -> None:
        with trio.move_on_after(self._config.start_timeout):
            while not is_ready(read_postmaster_status(cluster.paths.data_dir), process.pid):
                if process.returncode is not None:
                    raise start_failure(cluster, process.returncode)
                await trio.sleep(_READY_POLL)
            return
        raise start_failure(cluster, None)

    async def _ensure_database(self, cluster: PostgresCluster, info: ClusterInfo) -> None:
        call = ensure_database_call(cluster.bin_dir, info, self._config.database)
        result = await trio.run_process(
            call.argv, stdin=call.stdin, env=call.env, capture_stderr=True, check=False
        )
        if result.returncode != 0:
            raise PostgresClusterError(
                f"creating database {self._config.database} failed: {result.stderr.decode()}"
            )

    async def _terminate(self, process: trio.Process) -> None:
        """Fast shutdown (SIGINT: abort transactions, checkpoint, exit); SIGKILL after the grace."""
        process.send_signal(signal.SIGINT)
        with trio.move_on_after(self._config.stop_grace):
            await process.wait()
            return
        self._log.warning("postgres_killed", pid=process.pid, grace=self._config.stop_grace)
        process.kill()
        await process.wait()
