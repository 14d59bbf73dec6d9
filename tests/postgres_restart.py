"""Bring a throwaway PostgreSQL of a test's own back on the same port, for outage tests."""

from __future__ import annotations

import contextlib

from lms.store.postgres_cluster import lock_cluster
from tests.services import RunningPostgres, spawn_postmaster, wait_until_ready

RESTART_DEADLINE = 30.0


def restart_postgres(stopped: RunningPostgres) -> RunningPostgres:
    """Start `stopped`'s cluster again on its port; return once it accepts connections. The
    caller stops the old one first (`stopped.stop()`, which released the cluster's lock) and
    the new one at the end."""
    lock = contextlib.ExitStack()
    lock.enter_context(lock_cluster(stopped.cluster.paths))
    try:
        process = spawn_postmaster(stopped.cluster, stopped.port)
    except BaseException:
        lock.close()
        raise
    running = RunningPostgres(stopped.dsn, stopped.port, stopped.cluster, process, lock)
    try:
        wait_until_ready(stopped.cluster, process, RESTART_DEADLINE)
    except BaseException:
        running.stop()
        raise
    return running
