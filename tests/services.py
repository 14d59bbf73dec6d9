"""Throwaway PostgreSQL and Redis servers for tests.

Synchronous, because pytest's session fixtures are. The PostgreSQL side is a thin shell over
`lms/store/postgres_cluster.py` (binaries, service user, initdb, command line, readiness, crash
recovery), tuned for speed: no fsync anywhere, which is fine for data that dies with the session.
Everything listens on 127.0.0.1 on a free port; nothing touches the machine's own servers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lms.store.postgres_cluster import (
    ClusterPaths,
    PostgresCluster,
    PostgresClusterError,
    cluster_info,
    ensure_database_call,
    find_postgres_binaries,
    is_ready,
    lock_cluster,
    log_tail,
    open_log,
    pick_free_port,
    postgres_command,
    prepare_cluster,
    read_postmaster_status,
    recover,
    server_env,
    start_failure,
)

# Durability off: a crash loses nothing a test cares about, and commits stop waiting on disk.
FAST_SETTINGS: Final = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
_POLL: Final = 0.01


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A new directory, removed afterwards: on tmpfs (/dev/shm) when there is one, else in the
    system temp dir.

    tmpfs because a cluster is ~40 MB of small files: initdb took ~0.45 s there against
    ~1.2 s on this machine's ext4 /tmp. Mode 0711, so PostgreSQL's own user can reach a cluster
    inside it (as root it runs as another user, and pytest's `tmp_path` lies under a 0700
    directory of root's).
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=_scratch_base()))
    try:
        root.chmod(0o711)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _scratch_base() -> str | None:
    shm = "/dev/shm"  # noqa: S108 - mkdtemp's parent: a private dir is made in it
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class RunningPostgres:
    """A postmaster we started; `stop()` it (it also releases the cluster's lock)."""

    dsn: str
    port: int
    cluster: PostgresCluster
    process: subprocess.Popen[bytes]
    _lock: contextlib.ExitStack

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server (fast shutdown, SIGKILL after `grace` s) and wait until no process of
        the cluster is left. Safe to call twice, and after the postmaster has died."""
        try:
            stop_postmaster(self.process, grace)
            recover(self.cluster, grace)
        finally:
            self._lock.close()


def start_postgres(
    tmpdir: Path, *, database: str = "lms_test", timeout: float = 30.0
) -> RunningPostgres:
    """Start a fast, throwaway PostgreSQL in `tmpdir/postgres` (initdb'd on first use) on a free
    port; return once database `database` exists and accepts connections.

    `tmpdir` must be reachable by PostgreSQL's user (see `scratch_dir`); binaries it cannot
    reach (a venv in a private home, as root) run from the shared copy `prepare_cluster` makes
    under /var/lib/lms, which outlives the session as a cache. Raise `PostgresClusterError` (or
    a subclass) with the reason, and the end of the log when the server itself failed.
    """
    paths = ClusterPaths.under(tmpdir / "postgres")
    bin_dir = find_postgres_binaries(os.environ)
    lock = contextlib.ExitStack()
    lock.enter_context(lock_cluster(paths))
    try:
        cluster = prepare_cluster(bin_dir, paths, sync=False)
        recover(cluster, grace=5.0)
        port = pick_free_port()
        process = spawn_postmaster(cluster, port)
        running = RunningPostgres(
            dsn=cluster_info(cluster, port).dsn(database),
            port=port,
            cluster=cluster,
            process=process,
            _lock=lock,
        )
    except BaseException:
        lock.close()
        raise
    try:
        wait_until_ready(cluster, process, timeout)
        _create_database(cluster, port, database)
    except BaseException:
        running.stop()
        raise
    return running


def clone_cluster(source_root: Path, root: Path) -> None:
    """Copy the data dir of a stopped cluster under `source_root` (layout of
    `ClusterPaths.under`) to one under `root`, owner and modes kept: ten times faster than initdb.
    """
    source, target = ClusterPaths.under(source_root), ClusterPaths.under(root)
    target.data_dir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(source.data_dir), str(target.data_dir)], check=True)


@contextlib.contextmanager
def own_postgres(template_root: Path, prefix: str) -> Iterator[RunningPostgres]:
    """A PostgreSQL of the caller's own, cloned from the session's template cluster, for a test
    that stops it under a node; stopped and removed afterwards."""
    with scratch_dir(prefix) as root:
        clone_cluster(template_root, root / "postgres")
        running = start_postgres(root)
        try:
            yield running
        finally:
            running.stop()


def spawn_postmaster(cluster: PostgresCluster, port: int) -> subprocess.Popen[bytes]:
    """Start the postmaster with `FAST_SETTINGS`, logging to the cluster's log; do not wait."""
    command = postgres_command(
        cluster.bin_dir, cluster.paths.data_dir, port, cluster.paths.socket_dir, FAST_SETTINGS
    )
    with open_log(cluster) as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=server_env(os.environ),
            # Stopped by the session's teardown, not by a Ctrl-C meant for pytest.
            start_new_session=True,
            **cluster.user.process_options(),
        )


def wait_until_ready(
    cluster: PostgresCluster, process: subprocess.Popen[bytes], timeout: float
) -> None:
    """Return once `process` accepts connections; raise `PostgresStartError` if it exits first
    or takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not is_ready(read_postmaster_status(cluster.paths.data_dir), process.pid):
        if process.poll() is not None:
            raise start_failure(cluster, process.returncode)
        if time.monotonic() > deadline:
            raise start_failure(cluster, None)
        time.sleep(_POLL)


def stop_postmaster(process: subprocess.Popen[bytes], grace: float) -> None:
    """Fast shutdown (SIGINT), SIGKILL after `grace` seconds; return once it has exited."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _create_database(cluster: PostgresCluster, port: int, database: str) -> None:
    call = ensure_database_call(cluster.bin_dir, cluster_info(cluster, port), database)
    result = subprocess.run(
        call.argv, input=call.stdin, env=call.env, capture_output=True, check=False, timeout=30
    )
    if result.returncode != 0:
        raise PostgresClusterError(f"creating database {database} failed: {result.stderr!r}")


# --- Redis --------------------------------------------------------------------------------------


@dataclass
class RunningRedis:
    """A redis-server we started; `stop()` it."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (nothing to save), SIGKILL after `grace` seconds; return once it has exited."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_redis(tmpdir: Path, *, timeout: float = 10.0) -> RunningRedis:
    """Start redis-server on a free 127.0.0.1 port with no persistence, working in
    `tmpdir/redis`; return once it answers PING. Raise RuntimeError if there is no
    redis-server or it does not come up (with the end of its log)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found; `make system-deps` installs it (apt)")
    directory = tmpdir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port = pick_free_port()
    log_file = directory / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    running = RunningRedis(
        url=f"redis://127.0.0.1:{port}/0", port=port, process=process, log_file=log_file
    )
    try:
        _wait_for_pong(running, timeout)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_for_pong(redis: RunningRedis, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers_ping(redis.port):
        exit_code = redis.process.poll()
        if exit_code is not None or time.monotonic() > deadline:
            what = "did not answer PING" if exit_code is None else f"exited with {exit_code}"
            raise RuntimeError(
                f"redis-server {what}; the end of {redis.log_file}:\n{log_tail(redis.log_file)}"
            )
        time.sleep(_POLL)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False
