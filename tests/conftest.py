"""Session-wide fixtures, in groups marked by a header; add new groups below the existing ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lms.store.postgres_cluster import ClusterPaths, find_postgres_binaries, prepare_cluster
from tests.services import (
    RunningPostgres,
    RunningRedis,
    scratch_dir,
    start_postgres,
    start_redis,
)

# Per-test databases cloned from a migrated template (tests/databases.py).
pytest_plugins = ["tests.databases"]

# --- Backing servers: PostgreSQL and Redis, one of each per session ----------------------------
# Point LMS_TEST_DATABASE_URL / LMS_TEST_REDIS_URL at servers of your own to skip starting them;
# otherwise throwaway ones (tests/services.py) start on free loopback ports and stop at the end
# of the session, whatever its outcome.


def configured_or_throwaway(
    variable: str, prefix: str, start: Callable[[Path], RunningPostgres | RunningRedis]
) -> Iterator[str]:
    """The URL in `variable` when set; else a server `start`ed in a scratch dir, stopped after."""
    configured = os.environ.get(variable)
    if configured:
        yield configured
        return
    with scratch_dir(prefix) as root:
        server = start(root)
        try:
            yield server.dsn if isinstance(server, RunningPostgres) else server.url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL database the tests may use freely (a throwaway one's is `lms_test`)."""
    yield from configured_or_throwaway(
        "LMS_TEST_DATABASE_URL", "lms-test-postgres-", start_postgres
    )


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server the tests may use freely (db 0 of a throwaway one)."""
    yield from configured_or_throwaway("LMS_TEST_REDIS_URL", "lms-test-redis-", start_redis)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[Path]:
    """Root of a stopped, initialised cluster to copy with `tests.services.clone_cluster`, for
    tests that need a cluster of their own but not a fresh initdb."""
    with scratch_dir("lms-test-template-") as root:
        prepare_cluster(find_postgres_binaries(os.environ), ClusterPaths.under(root), sync=False)
        yield root


# --- Video clips made with PyAV (media/synthetic.py), once per session ---------------------------


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of 160x90 H.264 and AAC: the smallest real upload, transcoded in about a second."""
    from media.synthetic import write_clip  # PyAV loads only for the tests that need a clip

    return write_clip(
        tmp_path_factory.mktemp("clips") / "small.mp4", width=160, height=90, seconds=1.0
    )
