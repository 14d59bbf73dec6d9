"""A PostgreSQL data directory we own: find the binaries, initdb it, build the command that runs it.

Blocking code with no trio in it, shared by the node's embedded PostgreSQL
(`lms/store/embedded_postgres.py`, which calls it from a worker thread) and the test harness
(`tests/services.py`).

Theory of operation. A cluster lives in two directories, `ClusterPaths.data_dir` (what initdb
makes; the log file is inside it) and `ClusterPaths.socket_dir`, both owned by the OS user that
runs PostgreSQL and mode 0700. PostgreSQL refuses to run as root, so as root that user is the
data dir's existing owner, else `postgres`, else a system user `lms-postgres` we create; as
anyone else it is the current user. Every postgres process has the data dir as its working
directory, which is how `leftover_pids` finds the processes of this cluster (a postmaster left by
a node that was SIGKILLed, backends orphaned by a SIGKILLed postmaster) without trusting
`postmaster.pid`. Readiness comes from the status line PostgreSQL writes into `postmaster.pid`
("ready" once it accepts connections), the same signal `pg_ctl -w` waits for.

As root, that other user must reach both the binaries and the data dir, and a checkout in a
private (0700) home hides both. So what it cannot reach moves under the system state dir
(`SYSTEM_STATE_DIR`, /var/lib/lms): the binaries' installation is copied once into
`postgresql/<major>-<hash>` (root-owned, world-readable, reused by every cluster on the machine;
`runnable_bin_dir`), and the cluster itself goes to `clusters/<hash of the asked-for root>`, owned
by that user, mode 0700, where the same checkout finds it again (`place_cluster`). A root it can
reach stays where it was asked for.

Authentication is `trust`, so the server listens on 127.0.0.1 and its socket directory only, and
`pg_hba.conf` accepts nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

SUPERUSER: Final = "postgres"
HOST: Final = "127.0.0.1"
FALLBACK_SYSTEM_USER: Final = "lms-postgres"
SYSTEM_INSTALLS: Final = Path("/usr/lib/postgresql")
# Where, as root, what PostgreSQL's user cannot reach in place goes (see the module docstring).
SYSTEM_STATE_DIR: Final = Path("/var/lib/lms")

# Settings the cluster's safety depends on (trust auth is only safe on loopback): callers' extra
# settings may not override them.
_PROTECTED_SETTINGS: Final = frozenset(
    {
        "listen_addresses",
        "port",
        "unix_socket_directories",
        "data_directory",
        "hba_file",
        "logging_collector",
        "log_destination",
    }
)
_SETTING_NAME: Final = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
_DATABASE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SERVER_PROGRAMS: Final = ("postgres", "initdb", "psql")
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH: Final = 107
_LOG_ROTATE_BYTES: Final = 10 * 1024 * 1024
_HBA: Final = """\
# Written by lms. Trust is safe only because nothing but this host's loopback and the socket
# directory (mode 0700) can reach the server; keep listen_addresses = 127.0.0.1.
local   all           all                   trust
local   replication   all                   trust
host    all           all     127.0.0.1/32  trust
host    replication   all     127.0.0.1/32  trust
"""


class PostgresClusterError(RuntimeError):
    """Base of everything this module raises about a cluster."""


class PostgresNotFoundError(PostgresClusterError):
    """No directory holding the PostgreSQL server programs was found."""


class DirectoryNotTraversableError(PostgresClusterError):
    """The user PostgreSQL runs as cannot reach the cluster's directories or binaries, and they
    could not be moved where it can (see `place_cluster`, `runnable_bin_dir`)."""


class ClusterLockedError(PostgresClusterError):
    """Another process (another node, another test run) holds this cluster's lock."""


class PostgresStartError(PostgresClusterError):
    """PostgreSQL exited, or did not become ready in time, while starting.

    `exit_code` is the postmaster's exit status, or None if it was still running (a timeout).
    """

    def __init__(self, message: str, *, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- binaries -------------------------------------------------------------------------------


def find_postgres_binaries(
    env: Mapping[str, str],
    *,
    bundled: Path | None = None,
    system_installs: Path = SYSTEM_INSTALLS,
) -> Path:
    """The directory holding `postgres`, `initdb` and `psql`, in order of preference:

    `LMS_PG_BIN` from `env` (an error if it lacks them), the pgserver wheel's bundled binaries
    (`bundled` overrides where they are looked for), the newest `system_installs/*/bin`, then
    `PATH`.
    Raise `PostgresNotFoundError` listing every place looked at when none has them.
    """
    explicit = env.get("LMS_PG_BIN")
    if explicit:
        missing = _missing_programs(Path(explicit))
        if missing:
            raise PostgresNotFoundError(
                f"LMS_PG_BIN={explicit} does not contain the PostgreSQL programs "
                f"{', '.join(missing)}; point it at a PostgreSQL bin directory or unset it"
            )
        return Path(explicit)
    candidates: list[tuple[str, Path | None]] = [
        ("the pgserver wheel", bundled if bundled is not None else _pgserver_bin()),
        (f"{system_installs}/*/bin", _newest_system_install(system_installs)),
        ("PATH", _dir_on_path(env.get("PATH", ""))),
    ]
    for _, directory in candidates:
        if directory is not None and not _missing_programs(directory):
            return directory
    looked = "; ".join(f"{where}: {directory or 'not found'}" for where, directory in candidates)
    raise PostgresNotFoundError(
        "PostgreSQL server programs (postgres, initdb, psql) not found. Looked at "
        f"{looked}. Install the pgserver wheel (`pip install pgserver`) or the postgresql "
        "package, or set LMS_PG_BIN to a PostgreSQL bin directory."
    )


def _missing_programs(directory: Path) -> list[str]:
    return [p for p in _SERVER_PROGRAMS if not os.access(directory / p, os.X_OK)]


def _pgserver_bin() -> Path | None:
    # find_spec locates the wheel without importing it: importing pgserver has side effects.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _newest_system_install(root: Path) -> Path | None:
    versions = sorted(
        (int(d.name), d / "bin") for d in root.glob("*") if d.name.isdigit() and d.is_dir()
    )
    return versions[-1][1] if versions else None


def _dir_on_path(path: str) -> Path | None:
    found = shutil.which("postgres", path=path)
    return Path(found).parent if found else None


def postgres_major_version(bin_dir: Path) -> int:
    """The major version of `bin_dir/postgres` (16 for "postgres (PostgreSQL) 16.2")."""
    out = subprocess.run(  # noqa: S603 - argv is ours, no shell
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\)\s*(\d+)", out)
    if match is None:
        raise PostgresClusterError(f"cannot read a version from {bin_dir / 'postgres'}: {out!r}")
    return int(match.group(1))


# --- the OS user PostgreSQL runs as -----------------------------------------------------------


@dataclass(frozen=True)
class ServiceUser:
    """The OS user PostgreSQL runs as, with the groups its processes get."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def from_passwd(cls, entry: pwd.struct_passwd) -> ServiceUser:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)

    def process_options(self) -> dict[str, Any]:
        """Keyword arguments for `subprocess.Popen` (and trio's `open_process`) that run the
        child as this user: empty when that is already us, else uid, gid and its own groups (not
        root's)."""
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def resolve_service_user(data_dir: Path) -> ServiceUser:
    """Who runs PostgreSQL for `data_dir`: ourselves unless we are root; as root, the owner of an
    existing data dir, else `postgres` if that user exists, else `lms-postgres` (created as a
    system user if needed)."""
    if os.geteuid() != 0:
        return ServiceUser.from_passwd(pwd.getpwuid(os.geteuid()))
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        owner = data_dir.stat().st_uid
        if owner != 0:
            with contextlib.suppress(KeyError):
                return ServiceUser.from_passwd(pwd.getpwuid(owner))
    with contextlib.suppress(KeyError):
        return ServiceUser.from_passwd(pwd.getpwnam(SUPERUSER))
    return ServiceUser.from_passwd(_ensure_system_user(FALLBACK_SYSTEM_USER))


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(  # noqa: S603 - argv is ours, no shell
        [
            useradd,
            "--system",
            "--no-create-home",
            "--user-group",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "LMS embedded PostgreSQL",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Another process may have created it meanwhile (useradd then exits 9): fine either way.
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresClusterError(
            f"PostgreSQL cannot run as root and there is no `postgres` user; creating the system "
            f"user {name} failed ({useradd} exit {result.returncode}): {result.stderr.strip()}"
        ) from None


# --- directories --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterPaths:
    """Where a cluster lives. Both directories are owned by the service user, mode 0700."""

    data_dir: Path
    socket_dir: Path

    @classmethod
    def under(cls, root: Path) -> ClusterPaths:
        """The usual layout: `root/data` and `root/run`."""
        root = root.absolute()
        return cls(data_dir=root / "data", socket_dir=root / "run")

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def lock_file(self) -> Path:
        # Beside the data dir, not in it: the lock is taken before initdb creates the data dir.
        return self.data_dir.with_name(self.data_dir.name + ".lock")


def untraversable_ancestor(path: Path, user: ServiceUser) -> Path | None:
    """The first directory above `path` (from `/` down) that `user` may not search, or None.

    Directories that do not exist yet do not block: we create them searchable. Only permission
    bits count (no ACLs): enough for the usual root-owned 0700 directories."""
    for ancestor in reversed(path.absolute().parents):
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            return None
        if not _may_search(st, user):
            return ancestor
    return None


def _may_search(st: os.stat_result, user: ServiceUser) -> bool:
    if user.uid == 0:
        return True
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in user.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _check_reachable(path: Path, user: ServiceUser) -> None:
    blocker = untraversable_ancestor(path, user)
    if blocker is not None:
        raise DirectoryNotTraversableError(
            f"{_unreachable(path, user, blocker)}. Put the cluster elsewhere or allow it through "
            f"(chmod o+x {blocker})."
        )


def _unreachable(path: Path, user: ServiceUser, blocker: Path) -> str:
    st = blocker.stat()
    return (
        f"PostgreSQL runs as {user.name}, which cannot reach {path}: {blocker} (owner "
        f"{_user_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}) is not searchable by "
        f"{user.name}"
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _make_owned_dir(path: Path, user: ServiceUser) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    if user.uid != os.geteuid():
        os.chown(path, user.uid, user.gid)
    path.chmod(0o700)


def _make_shared_dir(path: Path) -> None:
    """Create `path` and its missing parents searchable by everyone (0755), whatever the umask."""
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(exist_ok=True)
            directory.chmod(0o755)


def cluster_root(wanted: Path, user: ServiceUser, state_dir: Path = SYSTEM_STATE_DIR) -> Path:
    """Where the cluster asked for at `wanted` lives, when PostgreSQL runs as `user`.

    `wanted` itself (absolute) whenever `user` can reach it, or when we are not root (then
    `user` is us, and nowhere else would do better), or when it already holds a cluster (moving
    to an empty one would look like lost data; preparing it says what blocks it). Otherwise
    `state_dir/clusters/<hash of wanted's real path>`: the same checkout gets the same directory
    on every run, two checkouts never share one.
    """
    wanted = wanted.absolute()
    data_dir = ClusterPaths.under(wanted).data_dir
    if (
        os.geteuid() != 0
        or untraversable_ancestor(data_dir, user) is None
        or is_initialised(data_dir)
    ):
        return wanted
    digest = hashlib.sha256(os.fsencode(os.path.realpath(wanted))).hexdigest()[:16]
    return state_dir / "clusters" / digest


def place_cluster(wanted: Path, state_dir: Path = SYSTEM_STATE_DIR) -> ClusterPaths:
    """The directories of the cluster asked for at `wanted` (see `cluster_root`); a root moved
    under `state_dir` is created owned by PostgreSQL's user, mode 0700, below 0755 parents.

    Call before `lock_cluster`: the lock lives in the chosen root. Raise
    `DirectoryNotTraversableError` saying what was tried when the moved root cannot be made.
    """
    wanted_paths = ClusterPaths.under(wanted)
    user = resolve_service_user(wanted_paths.data_dir)
    root = cluster_root(wanted, user, state_dir)
    if root == wanted_paths.data_dir.parent:
        return wanted_paths
    paths = ClusterPaths.under(root)
    # A moved cluster made earlier runs as whoever owns it (see `resolve_service_user`).
    owner = resolve_service_user(paths.data_dir)
    try:
        _make_shared_dir(root.parent)
        _make_owned_dir(root, owner)
    except OSError as exc:
        blocker = untraversable_ancestor(wanted_paths.data_dir, user)
        assert blocker is not None  # noqa: S101 - else cluster_root would have kept `wanted`
        raise DirectoryNotTraversableError(
            f"{_unreachable(wanted_paths.data_dir, user, blocker)}, and moving the cluster to "
            f"{root} failed: {exc}. Set LMS_DATA_DIR to a directory {user.name} can reach, or "
            f"allow it through (chmod o+x {blocker})."
        ) from exc
    return paths


def runnable_bin_dir(bin_dir: Path, user: ServiceUser, state_dir: Path = SYSTEM_STATE_DIR) -> Path:
    """`bin_dir` when `user` can reach it; else, as root, the same directory in a copy of its
    installation under `state_dir/postgresql` (see `_installation_copy`).

    Raise `DirectoryNotTraversableError` saying what was tried when neither works.
    """
    blocker = untraversable_ancestor(bin_dir / "postgres", user)
    if blocker is None:
        return bin_dir
    reason = _unreachable(bin_dir / "postgres", user, blocker)
    if os.geteuid() != 0:
        raise DirectoryNotTraversableError(
            f"{reason}. Set LMS_PG_BIN to binaries {user.name} can reach, or allow it through "
            f"(chmod o+x {blocker})."
        )
    try:
        return _installation_copy(bin_dir, state_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DirectoryNotTraversableError(
            f"{reason}, and copying its installation under {state_dir / 'postgresql'} failed: "
            f"{exc}. Set LMS_PG_BIN to binaries {user.name} can reach, or allow it through "
            f"(chmod o+x {blocker})."
        ) from exc


# Of an installation, beside its bin directory, what the server and initdb read: they find these
# relative to their own binary (the headers in include/ stay behind).
_INSTALLATION_PARTS: Final = ("lib", "share")
_LDD_LIBRARY: Final = re.compile(r"=> (/\S+) \(0x")


def _installation_copy(bin_dir: Path, state_dir: Path) -> Path:
    """`bin_dir` in a world-readable copy of its installation, made once and reused.

    It is `state_dir/postgresql/<major>-<hash>`, the hash taken over the installation's real
    path and its server binary's size and mtime, so an upgraded wheel gets a fresh copy (and a
    cluster keeps the major version it was made with). Built in a sibling under a lock and
    renamed into place: an interrupted copy is never used, and concurrent starts copy once.
    """
    bin_dir = bin_dir.resolve()
    base, parts = _installation_parts(bin_dir)
    binary = (bin_dir / "postgres").stat()
    key = f"{bin_dir.parent}\0{binary.st_size}\0{binary.st_mtime_ns}"
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:12]
    cache = state_dir / "postgresql"
    target = cache / f"{postgres_major_version(bin_dir)}-{digest}"
    _make_shared_dir(cache)
    with target.with_name(target.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            for part in parts:
                shutil.copytree(part, partial / part.relative_to(base))
            _open_to_all(partial)
            partial.rename(target)
    return target / bin_dir.relative_to(base)


def _installation_parts(bin_dir: Path) -> tuple[Path, list[Path]]:
    """What a copy of `bin_dir`'s installation holds: the directory it mirrors, and the
    directories under it to copy.

    Those are `bin_dir`, its `lib` and `share` siblings, and the directories outside them that
    the programs and server modules load shared libraries from relative to themselves
    (`$ORIGIN`): a repaired wheel (auditwheel) keeps its libraries in `<package>.libs` beside
    the package, so the copy keeps that directory at the same place relative to `bin_dir`.
    """
    install = bin_dir.parent
    parts = [bin_dir] + [install / p for p in _INSTALLATION_PARTS if (install / p).is_dir()]
    objects = [p for p in bin_dir.iterdir() if p.is_file()]
    objects += [p for p in (install / "lib").rglob("*.so") if p.is_file()]
    # ldd exits non-zero when one of them is not a dynamic object (a script): read what it found.
    listing = subprocess.run(  # noqa: S603 - argv is ours, no shell
        ["ldd", *map(str, objects)],  # noqa: S607 - the system's ldd, found on PATH
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for found in sorted(set(_LDD_LIBRARY.findall(listing))):
        # ldd spells a library found through $ORIGIN from the object's own directory.
        library = Path(os.path.realpath(found))
        if found.startswith(f"{install}/") and not any(
            library.is_relative_to(part) for part in parts
        ):
            parts.append(library.parent)
    return Path(os.path.commonpath(parts)), parts


def _open_to_all(tree: Path) -> None:
    """Directories 0755, files readable by all (and executable by all if by their owner)."""
    tree.chmod(0o755)
    for directory, subdirs, files in os.walk(tree):
        for name in subdirs:
            os.chmod(os.path.join(directory, name), 0o755)  # noqa: S103 - a shared install postgres' user must read
        for name in files:
            path = os.path.join(directory, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


@contextlib.contextmanager
def lock_cluster(paths: ClusterPaths) -> Iterator[None]:
    """Hold the cluster's lock for the block, so two nodes never run one data dir.

    The lock dies with the process holding it, so a postgres found running on the data dir while
    we hold it is a leftover of a dead owner. Raise `ClusterLockedError` if it is taken.
    """
    paths.lock_file.parent.mkdir(parents=True, exist_ok=True)
    # Python opens it close-on-exec: were the postmaster to inherit the descriptor, a postmaster
    # orphaned by a SIGKILLed node would keep the lock and the next node could not recover.
    with paths.lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClusterLockedError(
                f"{paths.data_dir} is in use by another process (it holds {paths.lock_file})"
            ) from None
        yield


# --- initdb -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresCluster:
    """A prepared cluster: its binaries, its directories and the user it runs as."""

    bin_dir: Path
    paths: ClusterPaths
    user: ServiceUser


def is_initialised(data_dir: Path) -> bool:
    """Whether initdb has completed in `data_dir` (it is renamed into place only when done)."""
    return (data_dir / "PG_VERSION").is_file()


def prepare_cluster(
    bin_dir: Path, paths: ClusterPaths, *, sync: bool, state_dir: Path = SYSTEM_STATE_DIR
) -> PostgresCluster:
    """Make `paths` ready to start: create the directories with the right owner and mode, initdb
    the data dir if it is not yet initialised, and check the binaries can run it.

    The cluster's `bin_dir` is `bin_dir`, or a copy under `state_dir` when the service user
    cannot reach it (see `runnable_bin_dir`). `sync=False` skips initdb's fsync (fine for
    throwaway clusters, not for real data). Call with the cluster's lock held. Raise
    `DirectoryNotTraversableError` when the service user cannot reach the directories or the
    binaries, `PostgresClusterError` when the data dir is unusable or initdb fails.
    """
    user = resolve_service_user(paths.data_dir)
    for directory in (paths.data_dir, paths.socket_dir):
        directory.parent.mkdir(parents=True, exist_ok=True)
        _check_reachable(directory, user)
    bin_dir = runnable_bin_dir(bin_dir, user, state_dir)
    _check_socket_path(paths.socket_dir)
    _make_owned_dir(paths.socket_dir, user)
    cluster = PostgresCluster(bin_dir=bin_dir, paths=paths, user=user)
    if is_initialised(paths.data_dir):
        _check_existing(cluster)
    else:
        _initdb(cluster, sync=sync)
    return cluster


def _check_socket_path(socket_dir: Path) -> None:
    longest = socket_dir / ".s.PGSQL.65535.lock"
    if len(os.fsencode(longest)) > _MAX_SOCKET_PATH:
        raise PostgresClusterError(
            f"socket directory {socket_dir} is too long for a unix socket path (max "
            f"{_MAX_SOCKET_PATH} bytes with the socket's name); choose a shorter one"
        )


def _check_existing(cluster: PostgresCluster) -> None:
    data_dir = cluster.paths.data_dir
    st = data_dir.stat()
    if st.st_uid != cluster.user.uid:
        raise PostgresClusterError(
            f"{data_dir} belongs to {_user_name(st.st_uid)}, not {cluster.user.name} who runs "
            f"PostgreSQL; chown -R {cluster.user.name}: {data_dir}"
        )
    data_version = int((data_dir / "PG_VERSION").read_text().strip().split(".")[0])
    binary_version = postgres_major_version(cluster.bin_dir)
    if data_version != binary_version:
        raise PostgresClusterError(
            f"{data_dir} holds a PostgreSQL {data_version} cluster but {cluster.bin_dir} has "
            f"PostgreSQL {binary_version}; set LMS_PG_BIN to a PostgreSQL {data_version} bin "
            "directory, or dump and restore the data"
        )


def _initdb(cluster: PostgresCluster, *, sync: bool) -> None:
    data_dir = cluster.paths.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        raise PostgresClusterError(
            f"{data_dir} exists and is not empty but holds no PostgreSQL cluster (no PG_VERSION)"
        )
    # initdb into a sibling and rename when complete, so an interrupted initdb leaves no
    # half-made data dir that the next start would trip over.
    staging = data_dir.with_name(data_dir.name + ".initdb")
    shutil.rmtree(staging, ignore_errors=True)
    _make_owned_dir(staging, cluster.user)
    result = subprocess.run(  # noqa: S603 - argv is ours, no shell
        initdb_command(cluster.bin_dir, staging, sync=sync),
        capture_output=True,
        text=True,
        check=False,
        cwd=staging,
        env=server_env(os.environ),
        **cluster.user.process_options(),
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise PostgresClusterError(
            f"initdb of {data_dir} failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr).strip()}"
        )
    hba = staging / "pg_hba.conf"
    hba.write_text(_HBA)
    if cluster.user.uid != os.geteuid():
        os.chown(hba, cluster.user.uid, cluster.user.gid)
    staging.rename(data_dir)


def initdb_command(bin_dir: Path, data_dir: Path, *, sync: bool) -> list[str]:
    """The initdb command line: superuser `postgres`, UTF8, trust auth (pg_hba.conf is replaced
    afterwards with loopback-only rules)."""
    command = [
        str(bin_dir / "initdb"),
        "--pgdata",
        str(data_dir),
        "--username",
        SUPERUSER,
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
        "--auth-local",
        "trust",
        "--auth-host",
        "trust",
        "--no-instructions",
    ]
    if not sync:
        command.append("--no-sync")
    return command


def server_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without PG* variables, which would otherwise quietly change what a program does."""
    return {k: v for k, v in env.items() if not k.startswith("PG")}


# --- running ----------------------------------------------------------------------------------


def postgres_command(
    bin_dir: Path,
    data_dir: Path,
    port: int,
    socket_dir: Path,
    extra_settings: Mapping[str, str],
) -> list[str]:
    """The command line that runs the postmaster in the foreground.

    It listens on 127.0.0.1:`port` and in `socket_dir`, and logs to stderr (the caller points
    stderr at `ClusterPaths.log_file`, see `open_log`). `extra_settings` are further `-c name=value`
    settings; raise ValueError for a malformed name or one that would change where the server
    listens or logs.
    """
    for name in extra_settings:
        if not _SETTING_NAME.fullmatch(name):
            raise ValueError(f"not a PostgreSQL setting name: {name!r}")
        if name in _PROTECTED_SETTINGS:
            raise ValueError(f"{name} is set by the cluster itself and cannot be overridden")
    settings = {
        "listen_addresses": HOST,
        "logging_collector": "off",
        "log_destination": "stderr",
        **extra_settings,
    }
    command = [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port)]
    command += ["-k", str(socket_dir)]
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    return command


def open_log(cluster: PostgresCluster) -> IO[bytes]:
    """Open the cluster's log for appending, to pass as the postmaster's stdout and stderr.

    A log grown past 10 MiB is first moved to `postgres.log.1` (the previous one is dropped).
    """
    log_file = cluster.paths.log_file
    with contextlib.suppress(FileNotFoundError):
        if log_file.stat().st_size > _LOG_ROTATE_BYTES:
            log_file.replace(log_file.with_name(log_file.name + ".1"))
    handle = log_file.open("ab")
    if cluster.user.uid != os.geteuid():
        os.chown(log_file, cluster.user.uid, cluster.user.gid)
    return handle


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log, or a note saying there is none."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no log at {log_file})"
    return "\n".join(text.splitlines()[-lines:])


def start_failure(cluster: PostgresCluster, exit_code: int | None) -> PostgresStartError:
    """The error for a postmaster that exited (`exit_code`) or timed out (None) while starting."""
    log_file = cluster.paths.log_file
    what = "did not become ready in time" if exit_code is None else f"exited with {exit_code}"
    return PostgresStartError(
        f"PostgreSQL on {cluster.paths.data_dir} {what} while starting; the end of {log_file}:\n"
        f"{log_tail(log_file)}",
        exit_code=exit_code,
    )


@dataclass(frozen=True)
class PostmasterStatus:
    """What a running postmaster says about itself in `postmaster.pid`."""

    pid: int
    port: int
    status: str  # "starting", "ready", "stopping" or "standby"; "" before it writes one


def read_postmaster_status(data_dir: Path) -> PostmasterStatus | None:
    """Parse `data_dir/postmaster.pid`; None when there is none or it is still being written."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        return PostmasterStatus(
            pid=int(lines[0]),
            port=int(lines[3]),
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (FileNotFoundError, IndexError, ValueError):
        return None


def is_ready(status: PostmasterStatus | None, pid: int) -> bool:
    """Whether the postmaster `pid` (not an earlier one) accepts connections."""
    return status is not None and status.pid == pid and status.status == "ready"


@dataclass(frozen=True)
class ClusterInfo:
    """How clients reach a running cluster."""

    port: int
    socket_dir: Path
    log_file: Path
    host: str = HOST
    user: str = SUPERUSER

    def dsn(self, database: str = "postgres") -> str:
        """`postgresql://postgres@127.0.0.1:PORT/database` (trust auth: no password)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def cluster_info(cluster: PostgresCluster, port: int) -> ClusterInfo:
    """How to reach `cluster` once it runs on `port`."""
    return ClusterInfo(
        port=port, socket_dir=cluster.paths.socket_dir, log_file=cluster.paths.log_file
    )


@dataclass(frozen=True)
class ClientCall:
    """A client program's command line and what to feed it on stdin."""

    argv: list[str]
    stdin: bytes
    env: dict[str, str]


def ensure_database_call(bin_dir: Path, info: ClusterInfo, name: str) -> ClientCall:
    """A psql run that creates database `name` unless it exists (idempotent).

    Raise ValueError for a name that is not a plain lower-case identifier.
    """
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name must match {_DATABASE_NAME.pattern}: {name!r}")
    script = (
        f"SELECT 'CREATE DATABASE {name}' "  # noqa: S608 - name matched _DATABASE_NAME above
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\\gexec\n"
    )
    argv = [
        str(bin_dir / "psql"),
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--dbname",
        info.dsn("postgres"),
        "--file",
        "-",
    ]
    env = server_env(os.environ) | {"PGCONNECT_TIMEOUT": "10"}
    return ClientCall(argv=argv, stdin=script.encode(), env=env)


def pick_free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# --- leftovers and crashes --------------------------------------------------------------------


def leftover_pids(cluster: PostgresCluster) -> list[int]:
    """Pids of this cluster's postgres processes: running our binary, in our data dir.

    Every postgres process works in its data dir; matching the binary too keeps an operator's
    shell that happens to sit there out of it.
    """
    data_dir = os.path.realpath(cluster.paths.data_dir)
    binary = os.path.realpath(cluster.bin_dir / "postgres")
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
            exe = os.readlink(f"/proc/{entry.name}/exe").removesuffix(" (deleted)")
        except OSError:  # gone meanwhile, a zombie, or a kernel thread
            continue
        if cwd == data_dir and exe == binary:
            pids.append(int(entry.name))
    return pids


def stop_leftovers(cluster: PostgresCluster, grace: float) -> list[int]:
    """Stop every process of this cluster that we did not start (see `leftover_pids`), and
    return their pids. Blocks for at most about `grace` + 5 seconds.

    A live postmaster gets a fast shutdown (SIGINT) and `grace` seconds; then everything left is
    SIGKILLed. Call only with the cluster's lock held: then they are a dead owner's leftovers.
    """
    found = leftover_pids(cluster)
    if not found:
        return []
    status = read_postmaster_status(cluster.paths.data_dir)
    if status is not None and status.pid in found:
        _signal(status.pid, signal.SIGINT)
        _wait_gone(cluster, grace)
    for pid in leftover_pids(cluster):
        _signal(pid, signal.SIGKILL)
    if not _wait_gone(cluster, 5.0):
        raise PostgresClusterError(
            f"PostgreSQL processes {leftover_pids(cluster)} of {cluster.paths.data_dir} "
            "survive SIGKILL"
        )
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(cluster: PostgresCluster, timeout: float) -> bool:
    # They are not our children, so there is nothing to wait() on: poll /proc briefly.
    deadline = time.monotonic() + timeout
    while leftover_pids(cluster):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def recover(cluster: PostgresCluster, grace: float) -> list[int]:
    """Make a cluster startable after a crash, whoever crashed: stop its leftover processes
    (`stop_leftovers`) and drop a stale `postmaster.pid`; return the pids stopped.

    Call with the cluster's lock held, before every start.
    """
    stopped = stop_leftovers(cluster, grace)
    clear_stale_pid_file(cluster)
    return stopped


def clear_stale_pid_file(cluster: PostgresCluster) -> bool:
    """Remove a `postmaster.pid` that would stop PostgreSQL from starting; return whether it did.

    PostgreSQL itself replaces a pid file whose pid is dead (and frees the old shared memory it
    names, so that case is left to it), but refuses to start when the file is unreadable or its
    pid now belongs to another live process (after a reboot, say). Call after `stop_leftovers`,
    with the lock held.
    """
    if not cluster.paths.pid_file.exists() or leftover_pids(cluster):
        return False
    status = read_postmaster_status(cluster.paths.data_dir)
    if status is not None and not _alive(status.pid):
        return False
    cluster.paths.pid_file.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
