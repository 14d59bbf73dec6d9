"""What the wrk benchmarks share: their command line, and a scratch database on a (possibly
throwaway) PostgreSQL that is dropped afterwards. The baseline servers' serving loop is in
`tests/bench/bare_server.py`, which imports none of this, so a baseline stays lean.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import trio

from tests.bench.bare_server import raise_descriptor_limit
from tests.bench.streaming import LOAD_CPUS
from tests.databases import admin_sql, migrate_database, with_database
from tests.services import scratch_dir, start_postgres


def wrk_parser(
    description: str, *, slice_s: int, turns: int, warmup: int
) -> argparse.ArgumentParser:
    """A command line with the options of a benchmark whose servers take turns under wrk."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--slice", type=int, default=slice_s, help="seconds of a wrk turn")
    parser.add_argument("--turns", type=int, default=turns, help="wrk turns per server")
    parser.add_argument(
        "--warmup", type=int, default=warmup, help="seconds of wrk per server first"
    )
    parser.add_argument("--keep", metavar="DIR", help="copy the servers' logs into DIR")
    return parser


def parse_wrk_args(
    parser: argparse.ArgumentParser, name: str, quick: dict[str, int]
) -> argparse.Namespace:
    """Parse the command line (`--quick` sets `quick`'s values), check that wrk is installed,
    and raise the descriptor limit for the connections to come."""
    parser.add_argument(
        "--quick", action="store_true", help="a quick check: " + json.dumps(quick)[1:-1]
    )
    args = parser.parse_args()
    if args.quick:
        vars(args).update(quick)
    if shutil.which("wrk") is None:
        parser.exit(1, f"the {name} benchmark needs wrk: apt-get install wrk (make bench does)\n")
    raise_descriptor_limit()
    return args


@contextlib.contextmanager
def scratch_database(prefix: str, keep: str | None) -> Iterator[tuple[Path, str]]:
    """A scratch folder for the servers (named from `prefix`) and the URL of a new, migrated
    database on LMS_TEST_DATABASE_URL's server, else on a throwaway PostgreSQL in that folder
    (on LOAD_CPUS). Afterwards the database is dropped and, when `keep` names a folder, the
    servers' logs are copied into it."""
    with scratch_dir(prefix) as root, _database_server(root) as server_dsn:
        name = f"lms_bench_{uuid.uuid4().hex[:8]}"
        admin_sql(server_dsn, f"CREATE DATABASE {name}")
        dsn = with_database(server_dsn, name)
        try:
            trio.run(migrate_database, dsn)
            yield root, dsn
        finally:
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                for log in root.glob("*.log"):
                    shutil.copy(log, keep)
            admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _database_server(root: Path) -> Iterator[str]:
    server_dsn = os.environ.get("LMS_TEST_DATABASE_URL")
    if server_dsn:
        yield server_dsn
        return
    pg = start_postgres(root)
    try:
        pin(pg.process.pid, LOAD_CPUS)
        yield pg.dsn
    finally:
        pg.stop()


def pin(pid: int, cpus: set[int]) -> None:
    """Run every thread of process `pid` on `cpus` (sched_setaffinity moves one thread)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(task.name), cpus)
