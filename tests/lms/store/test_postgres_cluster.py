"""lms/store/postgres_cluster.py: finding binaries, command lines, and real clusters on disk."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lms.store.postgres_cluster import (
    ClusterInfo,
    ClusterLockedError,
    ClusterPaths,
    DirectoryNotTraversableError,
    PostgresCluster,
    PostgresNotFoundError,
    PostgresStartError,
    PostmasterStatus,
    clear_stale_pid_file,
    cluster_root,
    ensure_database_call,
    find_postgres_binaries,
    is_initialised,
    is_ready,
    leftover_pids,
    lock_cluster,
    pick_free_port,
    place_cluster,
    postgres_command,
    prepare_cluster,
    read_postmaster_status,
    recover,
    resolve_service_user,
    runnable_bin_dir,
    untraversable_ancestor,
)
from tests.services import (
    clone_cluster,
    scratch_dir,
    spawn_postmaster,
    stop_postmaster,
    wait_until_ready,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root switches to another user")


def fake_bin(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for program in ("postgres", "initdb", "psql"):
        (directory / program).write_text("#!/bin/sh\n")
        (directory / program).chmod(0o755)
    return directory


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir("lms-test-cluster-") as directory:
        yield directory


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A system state dir of the test's own (the real one is /var/lib/lms)."""
    with scratch_dir("lms-test-state-") as directory:
        yield directory


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    """A directory PostgreSQL's user cannot reach when we are root: like a clone in root's home."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    return private


@pytest.fixture
def cluster(root: Path, postgres_template: Path) -> Iterator[PostgresCluster]:
    """A stopped cluster of the test's own, locked (copied: initdb is tested once, below)."""
    clone_cluster(postgres_template, root)
    paths = ClusterPaths.under(root)
    with lock_cluster(paths):
        yield prepare_cluster(find_postgres_binaries(os.environ), paths, sync=False)


# --- finding the binaries ---------------------------------------------------------------------


def test_lms_pg_bin_wins(tmp_path: Path) -> None:
    chosen = fake_bin(tmp_path / "chosen")
    env = {"LMS_PG_BIN": str(chosen), "PATH": str(fake_bin(tmp_path / "on_path"))}
    assert find_postgres_binaries(env, bundled=fake_bin(tmp_path / "bundled")) == chosen


def test_lms_pg_bin_without_the_programs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotFoundError, match=r"LMS_PG_BIN=.* initdb"):
        find_postgres_binaries({"LMS_PG_BIN": str(tmp_path)})


def test_the_pgserver_wheel_comes_next() -> None:
    found = find_postgres_binaries({"PATH": ""})
    assert found.parts[-3:] == ("pgserver", "pginstall", "bin")


def test_then_the_newest_system_install_then_path(tmp_path: Path) -> None:
    installs = tmp_path / "usr_lib_postgresql"
    fake_bin(installs / "9" / "bin")
    newest = fake_bin(installs / "15" / "bin")
    on_path = fake_bin(tmp_path / "on_path")
    env = {"PATH": str(on_path)}
    no_wheel = tmp_path / "no_wheel"
    assert find_postgres_binaries(env, bundled=no_wheel, system_installs=installs) == newest
    assert find_postgres_binaries(env, bundled=no_wheel, system_installs=no_wheel) == on_path


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotFoundError, match=r"pgserver.*PATH.*LMS_PG_BIN"):
        find_postgres_binaries({"PATH": ""}, bundled=tmp_path, system_installs=tmp_path)


# --- command lines and parsing (no server) ----------------------------------------------------


def test_postgres_command_listens_on_loopback_and_logs_to_stderr() -> None:
    command = postgres_command(Path("/pg/bin"), Path("/d"), 5999, Path("/s"), {"fsync": "off"})
    assert command[:7] == ["/pg/bin/postgres", "-D", "/d", "-p", "5999", "-k", "/s"]
    settings = [command[i + 1] for i, arg in enumerate(command) if arg == "-c"]
    assert settings == [
        "listen_addresses=127.0.0.1",
        "logging_collector=off",
        "log_destination=stderr",
        "fsync=off",
    ]


@pytest.mark.parametrize("name", ["listen_addresses", "hba_file", "bad name", "x;y"])
def test_postgres_command_refuses_unsafe_or_malformed_settings(name: str) -> None:
    with pytest.raises(ValueError, match=r"setting|cluster itself"):
        postgres_command(Path("/b"), Path("/d"), 1, Path("/s"), {name: "x"})


def test_dsn_names_the_loopback_port_and_database() -> None:
    info = ClusterInfo(port=5999, socket_dir=Path("/s"), log_file=Path("/d/postgres.log"))
    assert info.dsn() == "postgresql://postgres@127.0.0.1:5999/postgres"
    assert info.dsn("lms") == "postgresql://postgres@127.0.0.1:5999/lms"


def test_database_names_are_plain_identifiers() -> None:
    info = ClusterInfo(port=1, socket_dir=Path("/s"), log_file=Path("/l"))
    with pytest.raises(ValueError, match="database name"):
        ensure_database_call(Path("/b"), info, "x'; DROP")


def test_postmaster_status_is_read_from_the_pid_file(tmp_path: Path) -> None:
    assert read_postmaster_status(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text("42\n/d\n1700000000\n5999\n/s\n127.0.0.1\n  1 2\n")
    starting = read_postmaster_status(tmp_path)
    assert starting == PostmasterStatus(pid=42, port=5999, status="")
    with (tmp_path / "postmaster.pid").open("a") as pid_file:
        pid_file.write("ready   \n")
    ready = read_postmaster_status(tmp_path)
    assert is_ready(ready, 42)
    assert not is_ready(ready, 43)
    assert not is_ready(starting, 42)


# --- directories, users, locks ----------------------------------------------------------------


@as_root
def test_an_unreachable_directory_is_named(tmp_path: Path) -> None:
    # pytest's tmp_path lies under /tmp/pytest-of-root, mode 0700.
    user = resolve_service_user(tmp_path / "data")
    blocker = untraversable_ancestor(tmp_path / "data", user)
    assert blocker is not None
    assert blocker.name == "pytest-of-root"
    with pytest.raises(DirectoryNotTraversableError, match=f"{blocker}.*chmod o\\+x"):
        prepare_cluster(
            find_postgres_binaries(os.environ), ClusterPaths.under(tmp_path), sync=False
        )


def test_a_locked_cluster_cannot_be_locked_again(root: Path) -> None:
    paths = ClusterPaths.under(root)
    with (
        lock_cluster(paths),
        pytest.raises(ClusterLockedError, match="in use"),
        lock_cluster(paths),
    ):
        pass
    with lock_cluster(paths):
        pass


def test_prepare_initialises_once_with_owned_private_dirs(root: Path) -> None:
    paths = ClusterPaths.under(root)
    bin_dir = find_postgres_binaries(os.environ)
    cluster = prepare_cluster(bin_dir, paths, sync=False)
    assert is_initialised(paths.data_dir)
    if os.geteuid() == 0:
        assert cluster.user.name in {"postgres", "lms-postgres"}
    for directory in (paths.data_dir, paths.socket_dir):
        st = directory.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (cluster.user.uid, 0o700)
    hba = (paths.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert {rule[-1] for rule in rules} == {"trust"}
    assert {rule[3] for rule in rules if rule[0] == "host"} == {"127.0.0.1/32"}

    marker = paths.data_dir / "kept"
    marker.write_text("initdb must not run again")
    assert prepare_cluster(bin_dir, paths, sync=False) == cluster
    assert marker.exists()


def test_directories_not_made_yet_do_not_block(root: Path) -> None:
    user = resolve_service_user(root / "data")
    assert untraversable_ancestor(root / "a" / "b" / "data", user) is None


# --- where a cluster lives when PostgreSQL's user cannot reach it -------------------------------


def test_a_reachable_root_stays_where_it_was_asked_for(root: Path, state_dir: Path) -> None:
    wanted = root / ".lms" / "postgres"
    assert cluster_root(wanted, resolve_service_user(wanted / "data"), state_dir) == wanted
    assert place_cluster(wanted, state_dir) == ClusterPaths.under(wanted)
    assert list(state_dir.iterdir()) == []


@as_root
def test_an_unreachable_root_gets_a_directory_of_its_own_found_again_next_time(
    private_dir: Path, state_dir: Path
) -> None:
    wanted = private_dir / "checkout" / ".lms" / "postgres"
    user = resolve_service_user(wanted / "data")
    moved = cluster_root(wanted, user, state_dir)
    assert moved.parent == state_dir / "clusters"
    assert cluster_root(wanted, user, state_dir) == moved
    other = private_dir / "other-checkout" / ".lms" / "postgres"
    assert cluster_root(other, user, state_dir) != moved

    paths = place_cluster(wanted, state_dir)
    assert paths == ClusterPaths.under(moved)
    st = moved.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o700)
    assert stat.S_IMODE((state_dir / "clusters").stat().st_mode) == 0o755
    assert untraversable_ancestor(paths.data_dir, user) is None
    with lock_cluster(paths):
        prepare_cluster(find_postgres_binaries(os.environ), paths, sync=False)
    assert place_cluster(wanted, state_dir) == paths
    assert is_initialised(paths.data_dir)


@as_root
def test_an_unreachable_root_that_holds_a_cluster_is_not_silently_replaced(
    private_dir: Path, state_dir: Path
) -> None:
    wanted = private_dir / "postgres"
    (wanted / "data").mkdir(parents=True)
    (wanted / "data" / "PG_VERSION").write_text("16\n")
    assert cluster_root(wanted, resolve_service_user(wanted / "data"), state_dir) == wanted
    with pytest.raises(DirectoryNotTraversableError, match="chmod o\\+x"):
        prepare_cluster(
            find_postgres_binaries(os.environ), place_cluster(wanted, state_dir), sync=False
        )


@as_root
def test_when_nowhere_works_the_error_says_what_was_tried(private_dir: Path, root: Path) -> None:
    not_a_dir = root / "file"
    not_a_dir.write_text("")
    wanted = private_dir / "postgres"
    with pytest.raises(
        DirectoryNotTraversableError,
        match=f"cannot reach {wanted}/data: .* not searchable .*moving the cluster to "
        f"{not_a_dir}/clusters/.* failed",
    ):
        place_cluster(wanted, not_a_dir)


def copy_of_the_wheel(destination: Path) -> Path:
    """The pgserver wheel's installation copied to `destination`, as pip lays it out (the
    programs find libpq in `site-packages/pgserver.libs`); return its bin dir."""
    wheel_bin = find_postgres_binaries({"PATH": ""})
    site_packages = wheel_bin.parents[2]
    for part in ("pgserver/pginstall/bin", "pgserver/pginstall/lib", "pgserver/pginstall/share"):
        shutil.copytree(site_packages / part, destination / part)
    for libs in site_packages.glob("pgserver.libs"):
        shutil.copytree(libs, destination / libs.name)
    return destination / "pgserver" / "pginstall" / "bin"


@as_root
def test_binaries_postgres_cannot_reach_run_from_a_shared_copy_made_once(
    private_dir: Path, root: Path, state_dir: Path, postgres_template: Path
) -> None:
    hidden_bin = copy_of_the_wheel(private_dir / "venv")
    clone_cluster(postgres_template, root)
    paths = ClusterPaths.under(root)
    with lock_cluster(paths):
        cluster = prepare_cluster(hidden_bin, paths, sync=False, state_dir=state_dir)
        copy = cluster.bin_dir
        assert copy.is_relative_to(state_dir / "postgresql")
        assert untraversable_ancestor(copy / "postgres", cluster.user) is None
        process = spawn_postmaster(cluster, pick_free_port())
        try:
            wait_until_ready(cluster, process, timeout=20)
            assert process.pid in leftover_pids(cluster)
        finally:
            stop_postmaster(process, grace=5)
        made = copy.stat().st_ino
        assert runnable_bin_dir(hidden_bin, cluster.user, state_dir) == copy
        assert copy.stat().st_ino == made


@as_root
def test_binaries_that_cannot_be_copied_are_reported_with_what_was_tried(
    private_dir: Path, root: Path
) -> None:
    hidden_bin = fake_bin(private_dir / "bin")
    (hidden_bin / "postgres").write_text('#!/bin/sh\necho "postgres (PostgreSQL) 16.2"\n')
    not_a_dir = root / "file"
    not_a_dir.write_text("")
    user = resolve_service_user(root / "data")
    with pytest.raises(
        DirectoryNotTraversableError,
        match=f"cannot reach {hidden_bin}/postgres.*copying its installation under {not_a_dir}",
    ):
        runnable_bin_dir(hidden_bin, user, not_a_dir)


@as_root
def test_an_existing_data_dir_runs_as_its_owner(root: Path) -> None:
    data_dir = root / "data"
    data_dir.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
    assert resolve_service_user(data_dir).name == "nobody"


# --- real servers -----------------------------------------------------------------------------


def test_a_sigkilled_cluster_starts_again(cluster: PostgresCluster) -> None:
    port = pick_free_port()
    first = spawn_postmaster(cluster, port)
    try:
        wait_until_ready(cluster, first, timeout=20)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert cluster.paths.pid_file.exists()  # what a crash leaves behind

        recover(cluster, grace=5)
        assert leftover_pids(cluster) == []
        second = spawn_postmaster(cluster, port)
        try:
            wait_until_ready(cluster, second, timeout=20)
        finally:
            stop_postmaster(second, grace=5)
    finally:
        stop_postmaster(first, grace=5)
    assert leftover_pids(cluster) == []


def test_recover_stops_a_postmaster_left_by_a_dead_owner(cluster: PostgresCluster) -> None:
    orphan = spawn_postmaster(cluster, pick_free_port())
    try:
        wait_until_ready(cluster, orphan, timeout=20)
        assert orphan.pid in leftover_pids(cluster)
        assert recover(cluster, grace=5) != []
        assert orphan.wait(timeout=5) == 0  # a clean fast shutdown, not a kill
        assert leftover_pids(cluster) == []
    finally:
        stop_postmaster(orphan, grace=5)


def test_a_pid_file_naming_another_live_process_is_removed(cluster: PostgresCluster) -> None:
    pid_file = cluster.paths.pid_file
    pid_file.write_text(
        f"{os.getpid()}\n{cluster.paths.data_dir}\n0\n1\n/s\n127.0.0.1\n1 2\nready\n"
    )
    assert clear_stale_pid_file(cluster)
    assert not pid_file.exists()

    # A dead pid is left for PostgreSQL, which then also frees the shared memory it names.
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n{cluster.paths.data_dir}\n0\n1\n/s\n127.0.0.1\n1 2\n")
    assert not clear_stale_pid_file(cluster)

    pid_file.write_text("")
    assert clear_stale_pid_file(cluster)


def test_a_failed_start_reports_the_log(cluster: PostgresCluster) -> None:
    with open(cluster.paths.data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write("shared_buffers = 'lots'\n")
    process = spawn_postmaster(cluster, pick_free_port())
    try:
        with pytest.raises(
            PostgresStartError, match=r"(?s)exited with 1.*shared_buffers"
        ) as caught:
            wait_until_ready(cluster, process, timeout=20)
        assert caught.value.exit_code == 1
    finally:
        stop_postmaster(process, grace=5)
