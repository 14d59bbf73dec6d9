"""A real nginx (Debian's `nginx-light`) as a child process, for tests and benchmarks: the
repository's deploy/nginx/lms.conf with this run's ports, media volume, keys and (optionally) a
throwaway TLS certificate filled in, or any other server block.

nginx runs in the foreground (`daemon off;`) with its pid, logs and temp files in a directory of
the caller's, listening on 127.0.0.1 only. As root, its workers run as `nobody`, as they run
unprivileged in production: the media files they serve must be readable by others, and the
directory must be a scratch dir (tests/services.py: mode 0711), not pytest's 0700 tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from lms.store.postgres_cluster import pick_free_port

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "nginx"
LMS_CONF = DEPLOY / "lms.conf"
MEDIA_KEYS_SCRIPT = DEPLOY / "media-keys.sh"
SECURITY_HEADERS = DEPLOY / "security-headers.conf"
# What lms.conf names for the compose deployment, replaced by `render_lms_conf`.
DEPLOYED_MEDIA_ROOT = "/var/lib/lms/media"
DEPLOYED_KEYS_FILE = "/etc/nginx/lms/media_keys.conf"
DEPLOYED_SECURITY_HEADERS = "/etc/nginx/lms/security-headers.conf"
DEPLOYED_CERTIFICATE = "/etc/nginx/lms/tls/fullchain.pem"
DEPLOYED_CERTIFICATE_KEY = "/etc/nginx/lms/tls/privkey.pem"
_UPSTREAM_SERVERS = re.compile(r"(?:^ *server lms\d+:8000[^;\n]*;\n)+", re.MULTILINE)
_HTTPS_LISTEN = re.compile(r"^    listen 443 ssl http2;$", re.MULTILINE)
_REDIRECT_LISTEN = re.compile(r"^    listen 80;$", re.MULTILINE)
_CERTIFICATE_LINES = re.compile(
    r"^ *ssl_certificate(?:_key)? /etc/nginx/lms/tls/\S+;\n", re.MULTILINE
)
START_DEADLINE = 10.0
STOP_DEADLINE = 10.0
# Another process may take the free port between our probe and nginx's bind: try again.
START_ATTEMPTS = 3


class NginxMissing(RuntimeError):
    pass


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        raise NginxMissing("nginx is not installed: apt-get install nginx-light (make system-deps)")
    return found


@dataclass(frozen=True)
class Tls:
    """A certificate and its key, as PEM files."""

    certificate: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (and nothing else)."""
        return ssl.create_default_context(cafile=self.certificate)


async def throwaway_tls(directory: Path, *, name: str = "localhost") -> Tls:
    """A self-signed certificate for `name` and 127.0.0.1, valid for a day, in `directory`."""
    tls = Tls(directory / "certificate.pem", directory / "key.pem")
    result = await trio.run_process(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
            "-keyout", str(tls.key), "-out", str(tls.certificate),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    return tls


def render_lms_conf(
    *,
    port: int,
    upstreams: Sequence[str],
    media_root: Path,
    keys_file: Path,
    tls: Tls | None = None,
    redirect_port: int | None = None,
) -> str:
    """deploy/nginx/lms.conf for this machine, on 127.0.0.1: its HTTPS server on `port` with
    `tls`'s certificate, or without `tls` plain HTTP there (as before TLS was configured), and
    its redirecting HTTP server on `redirect_port` (a free port when None); proxying to
    `upstreams` (host:port), serving `media_root`, keys from `keys_file`. Fails if the file no
    longer has what is replaced, so a change there cannot leave a test on the compose paths."""
    text = LMS_CONF.read_text()
    servers = "".join(f"    server {upstream};\n" for upstream in upstreams)
    if redirect_port is None:
        redirect_port = pick_free_port()
    if tls is None:
        listen = f"    listen 127.0.0.1:{port};"
        certificates = [(_CERTIFICATE_LINES, "")]
    else:
        listen = f"    listen 127.0.0.1:{port} ssl http2;"
        certificates = [
            (re.compile(re.escape(DEPLOYED_CERTIFICATE)), str(tls.certificate)),
            (re.compile(re.escape(DEPLOYED_CERTIFICATE_KEY)), str(tls.key)),
        ]
    replacements = [
        (_HTTPS_LISTEN, listen),
        (_REDIRECT_LISTEN, f"    listen 127.0.0.1:{redirect_port};"),
        *certificates,
        (_UPSTREAM_SERVERS, servers),
        (re.compile(re.escape(DEPLOYED_MEDIA_ROOT)), str(media_root)),
        (re.compile(re.escape(DEPLOYED_KEYS_FILE)), str(keys_file)),
        (re.compile(re.escape(DEPLOYED_SECURITY_HEADERS)), str(SECURITY_HEADERS)),
    ]
    for pattern, replacement in replacements:
        text, count = pattern.subn(replacement, text)
        assert count, f"{LMS_CONF} no longer holds {pattern.pattern!r}"
    return text


async def write_media_keys(keys: str, path: Path) -> None:
    """Run deploy/nginx/media-keys.sh, as the nginx container does, for LMS_MEDIA_KEYS=`keys`."""
    result = await trio.run_process(
        ["sh", str(MEDIA_KEYS_SCRIPT), str(path)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LMS_MEDIA_KEYS": keys},
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()


def main_conf(
    directory: Path, http: str, *, access_log: bool, worker_connections: int = 4096
) -> str:
    """nginx.conf around `http` (the http-context text): foreground, one worker, everything
    under `directory`. The http-level settings are the official image's that matter here.
    `worker_connections` counts both sides: a proxied WebSocket takes two."""
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    log = f"access_log {directory / 'access.log'};" if access_log else "access_log off;"
    return f"""daemon off;
master_process on;
worker_processes 1;
{user}
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} notice;
events {{
    worker_connections {worker_connections};
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    keepalive_timeout 65;
    {log}
{temp}
{http}
}}
"""


@dataclass
class Nginx:
    process: trio.Process
    port: int
    directory: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The master and its workers."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *(int(pid) for pid in children.read_text().split())]

    def error_log(self) -> str:
        return (self.directory / "error.log").read_text(errors="replace")

    async def stop(self) -> None:
        """Fast shutdown (SIGTERM); wait for the master to exit."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(STOP_DEADLINE):
            await self.process.wait()


async def start_nginx(
    directory: Path,
    http: Callable[[int], str],
    *,
    access_log: bool = True,
    cpus: set[int] | None = None,
    scheme: str = "http",
    worker_connections: int = 4096,
) -> Nginx:
    """Start nginx with `http(port)` as its http-context configuration, on a free port; return
    once it accepts connections. `cpus`: pin it (its workers inherit the affinity). `scheme`:
    what `http` serves on that port, for `Nginx.url`."""
    binary = nginx_binary()
    for attempt in range(START_ATTEMPTS):
        port = pick_free_port()
        conf = directory / "nginx.conf"
        conf.write_text(
            main_conf(
                directory,
                http(port),
                access_log=access_log,
                worker_connections=worker_connections,
            )
        )
        error_log = directory / "error.log"
        error_log.write_text("")
        (directory / "nginx.pid").unlink(missing_ok=True)
        # Pinned before it starts, so the workers it forks inherit the affinity.
        pinned = [] if cpus is None else ["taskset", "-c", ",".join(map(str, sorted(cpus)))]
        process = await trio.lowlevel.open_process(
            [*pinned, binary, "-p", str(directory), "-c", str(conf), "-e", str(error_log)],
            stdin=subprocess.DEVNULL,
        )
        nginx = Nginx(process, port, directory, scheme)
        try:
            listening = await _listening(nginx)
        except BaseException:
            with trio.CancelScope(shield=True):
                process.kill()
                await process.wait()
            raise
        if listening:
            return nginx
        log = nginx.error_log()
        if "Address already in use" not in log or attempt == START_ATTEMPTS - 1:
            raise AssertionError(f"nginx did not start:\n{log}")
    raise AssertionError("unreachable")


async def _listening(nginx: Nginx) -> bool:
    """Whether nginx came up: True once it listens, False if it exits first (a port taken).
    nginx writes its pid file after it has bound every listener, and then starts its workers,
    which take the connections waiting in the backlog."""
    pid_file = nginx.directory / "nginx.pid"
    with trio.fail_after(START_DEADLINE):
        while nginx.process.returncode is None:
            if pid_file.exists() and pid_file.read_text().strip() == str(nginx.process.pid):
                return True
            await trio.sleep(0.02)
        await nginx.process.wait()
        return False
