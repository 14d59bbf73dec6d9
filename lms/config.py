"""One typed settings object, read from the environment and validated once at start.

Every bad value is reported, all at once, each with the variable's name, so an operator fixes a
deployment in one round rather than one error per restart.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from email.utils import parseaddr
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from lms.domain.client_address import Network, parse_networks
from lms.domain.edge_limits import (
    DEFAULT_EDGE_LIMITS,
    EdgeLimits,
    parse_edge_limits,
    parse_limit,
)
from lms.domain.media_urls import MediaKey, derived_key, parse_keys
from lms.domain.token_bucket import Limit
from lms.mail.smtp_url import SmtpTarget, parse_smtp_url

T = TypeVar("T")

DEFAULT_DATA_DIR = Path(".lms")
MIN_SECRET_LENGTH = 32
RESET_LIMIT_PER_ADDRESS = Limit(capacity=5, rate=5 / 3600)
RESET_LIMIT_PER_IP = Limit(capacity=30, rate=30 / 3600)


class ConfigError(Exception):
    """The environment holds invalid settings; `problems` lists one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # None means the embedded default: a PostgreSQL we start ourselves in `data_dir`.
    database_url: str | None = None
    # None means one node: the bus and cache tier run in memory.
    redis_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    media_dir: Path = DEFAULT_DATA_DIR / "media"
    # Readiness fails below this many free bytes on the media volume (lms/health.py): uploads
    # and transcodes would start and then fail half-written.
    media_min_free_bytes: int = 1 << 30
    secret_key: str = field(default="", repr=False)
    db_pool_min: int = 2
    db_pool_max: int = 10
    access_token_ttl: int = 900
    refresh_token_ttl: int = 14 * 24 * 3600
    max_body_bytes: int = 1 << 20
    # Seconds a request body may take: a small one to arrive whole, a streamed one between two
    # pieces; then 408 and the connection closed (lms/http/unread_body.py).
    body_timeout: int = 30
    log_level: str = "info"
    log_format: str = "console"
    # One access line per HTTP request and per WebSocket's open and close.
    access_log: bool = True
    # Per-request and per-WebSocket figures for /metrics (off: the edge counts nothing).
    metrics_enabled: bool = True
    seed_demo: bool = False
    embedded_pg_port: int = 0
    node_id: str = field(default_factory=_default_node_id)
    shutdown_grace: float = 10.0
    # Errors (unhandled request errors, actor crashes) go to this Sentry DSN; None: nowhere,
    # and sentry-sdk is never imported (lms/observability/sentry.py).
    sentry_dsn: str | None = field(default=None, repr=False)
    sentry_environment: str = "production"
    # Uploads and transcoding (lms/uploads, lms/jobs, actors/transcoder).
    max_upload_bytes: int = 5 << 30
    max_concurrent_uploads: int = 5  # unfinished uploads per user
    transcode_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # 0: none here
    job_lease_seconds: int = 30
    job_max_attempts: int = 3
    # `lms worker` serves its /metrics on this port of `host`; 0: not at all.
    metrics_port: int = 0
    # Signed media URLs (lms/domain/media_urls.py). The first key signs, all verify; empty means
    # one key derived from `secret_key` (filled in by `with_secret`).
    media_keys: tuple[MediaKey, ...] = field(default=(), repr=False)
    media_url_ttl: int = 4 * 3600
    media_base_url: str = ""  # a CDN or nginx origin prefixing media URLs; "" = this origin
    # nginx's internal location aliasing the media volume ("/_media/"): Bearer downloads answer
    # with X-Accel-Redirect into it. None: the node sends the bytes itself.
    accel_redirect: str | None = None
    # The cache's memory tier on each node (lms/cache), in bytes of keys and values.
    cache_max_bytes: int = 64 << 20
    # Learners inactive this many days get a learning reminder (actors/scheduler.py).
    reminder_days: int = 3
    # Mail (lms/mail, actors/mailer.py). No SMTP URL: the embedded default, one .eml file per
    # message in `mail_dir`.
    smtp_url: str | None = None
    mail_from: str = "LMS <lms@localhost>"
    # The site's origin as learners reach it, for absolute links in mail; "" = this node's
    # own address (`public_origin`).
    public_url: str = ""
    # How long a claimed message is its mailer's: a node killed mid-send leaves it to be sent
    # again (with its Message-ID) this long after the claim. A send is cut off well before
    # (lms/mail/mailer.py).
    mail_lease_seconds: int = 90
    # Proxies whose X-Forwarded-For names the client (lms/domain/client_address.py); none by
    # default, so a client cannot choose the address it is rate-limited by.
    trusted_proxies: tuple[Network, ...] = ()
    # Password reset requests: per e-mail address (the mail it sends), per client address.
    reset_limit_per_address: Limit = RESET_LIMIT_PER_ADDRESS
    reset_limit_per_ip: Limit = RESET_LIMIT_PER_IP
    # The other limits at the edge (lms/domain/edge_limits.py), shared by the nodes through
    # Redis when configured (lms/http/rate_limits.py).
    rate_limits: EdgeLimits = DEFAULT_EDGE_LIMITS
    # WebSockets open at once per user on one node; the next is closed with 4429.
    max_sockets_per_user: int = 20
    # A unit of database work slower than this logs `slow_sql` (lms/store/database.py).
    slow_sql_ms: int = 200

    def __repr__(self) -> str:
        """Every field but the secrets, and URLs without their passwords: settings end up in
        logs and tracebacks."""
        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                if f.name.endswith("_url") and isinstance(value, str):
                    value = _without_password(value)
                shown.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def mail_dir(self) -> Path:
        """Where mail goes when no SMTP server is configured: one .eml file per message."""
        return self.data_dir / "mail"

    @property
    def smtp(self) -> SmtpTarget | None:
        """The SMTP server mail goes to (LMS_SMTP_URL, checked at start), or None."""
        return None if self.smtp_url is None else parse_smtp_url(self.smtp_url)

    @property
    def public_origin(self) -> str:
        """LMS_PUBLIC_URL, or this node's own address when it is unset (one machine)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `LMS_*` variables; raise ConfigError listing every bad one."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        data_dir = Path(reader.get("LMS_DATA_DIR", str(DEFAULT_DATA_DIR)))
        database_url = reader.parse("LMS_DATABASE_URL", None, _url("postgresql", "postgres"))
        settings = cls(
            host=reader.get("LMS_HOST", cls.host),
            port=reader.parse("LMS_PORT", cls.port, _int_between(0, 65535)),
            database_url=database_url,
            redis_url=reader.parse("LMS_REDIS_URL", None, _url("redis", "rediss", "unix")),
            data_dir=data_dir,
            media_dir=Path(reader.get("LMS_MEDIA_DIR", str(data_dir / "media"))),
            media_min_free_bytes=reader.parse(
                "LMS_MEDIA_MIN_FREE_BYTES", cls.media_min_free_bytes, _int_between(0, 1 << 50)
            ),
            # None only with the problem recorded that raises ConfigError below.
            secret_key=reader.parse(
                "LMS_SECRET_KEY",
                "" if database_url is None else None,
                _secret,
                required_because="it is required when LMS_DATABASE_URL is set (production)",
            )
            or "",
            db_pool_min=reader.parse("LMS_DB_POOL_MIN", cls.db_pool_min, _int_between(0, 1000)),
            db_pool_max=reader.parse("LMS_DB_POOL_MAX", cls.db_pool_max, _int_between(1, 1000)),
            access_token_ttl=reader.parse(
                "LMS_ACCESS_TOKEN_TTL", cls.access_token_ttl, _int_between(10, 86_400)
            ),
            refresh_token_ttl=reader.parse(
                "LMS_REFRESH_TOKEN_TTL", cls.refresh_token_ttl, _int_between(60, 366 * 86_400)
            ),
            max_body_bytes=reader.parse(
                "LMS_MAX_BODY_BYTES", cls.max_body_bytes, _int_between(1024, 1 << 30)
            ),
            body_timeout=reader.parse("LMS_BODY_TIMEOUT", cls.body_timeout, _int_between(1, 3600)),
            log_level=reader.parse(
                "LMS_LOG_LEVEL", cls.log_level, _choice("debug", "info", "warning", "error")
            ),
            log_format=reader.parse("LMS_LOG_FORMAT", cls.log_format, _choice("json", "console")),
            access_log=reader.parse("LMS_ACCESS_LOG", cls.access_log, _bool),
            metrics_enabled=reader.parse("LMS_METRICS", cls.metrics_enabled, _bool),
            seed_demo=reader.parse("LMS_SEED_DEMO", database_url is None, _bool),
            embedded_pg_port=reader.parse("LMS_EMBEDDED_PG_PORT", 0, _int_between(0, 65535)),
            node_id=reader.get("LMS_NODE_ID", "") or _default_node_id(),
            shutdown_grace=reader.parse("LMS_SHUTDOWN_GRACE", cls.shutdown_grace, _seconds),
            sentry_dsn=reader.parse("LMS_SENTRY_DSN", None, _sentry_dsn),
            sentry_environment=reader.get("LMS_SENTRY_ENVIRONMENT", "") or cls.sentry_environment,
            max_upload_bytes=reader.parse(
                "LMS_MAX_UPLOAD_BYTES", cls.max_upload_bytes, _int_between(1, 1 << 40)
            ),
            max_concurrent_uploads=reader.parse(
                "LMS_MAX_CONCURRENT_UPLOADS", cls.max_concurrent_uploads, _int_between(1, 1000)
            ),
            transcode_workers=reader.parse(
                "LMS_TRANSCODE_WORKERS", os.cpu_count() or 1, _int_between(0, 256)
            ),
            job_lease_seconds=reader.parse(
                "LMS_JOB_LEASE_SECONDS", cls.job_lease_seconds, _int_between(1, 3600)
            ),
            job_max_attempts=reader.parse(
                "LMS_JOB_MAX_ATTEMPTS", cls.job_max_attempts, _int_between(1, 100)
            ),
            metrics_port=reader.parse("LMS_METRICS_PORT", cls.metrics_port, _int_between(0, 65535)),
            media_keys=reader.parse("LMS_MEDIA_KEYS", (), parse_keys),
            media_url_ttl=reader.parse(
                "LMS_MEDIA_URL_TTL", cls.media_url_ttl, _int_between(60, 7 * 86_400)
            ),
            media_base_url=reader.parse("LMS_MEDIA_BASE_URL", "", _origin),
            accel_redirect=reader.parse("LMS_ACCEL_REDIRECT", None, _internal_location),
            cache_max_bytes=reader.parse(
                "LMS_CACHE_MAX_BYTES", cls.cache_max_bytes, _int_between(1 << 20, 1 << 40)
            ),
            reminder_days=reader.parse(
                "LMS_REMINDER_DAYS", cls.reminder_days, _int_between(1, 365)
            ),
            smtp_url=reader.parse("LMS_SMTP_URL", None, _smtp_url),
            mail_from=reader.parse("LMS_MAIL_FROM", cls.mail_from, _mail_from),
            public_url=reader.parse("LMS_PUBLIC_URL", "", _origin),
            mail_lease_seconds=reader.parse(
                "LMS_MAIL_LEASE_SECONDS", cls.mail_lease_seconds, _int_between(3, 3600)
            ),
            trusted_proxies=reader.parse("LMS_TRUSTED_PROXIES", (), parse_networks),
            reset_limit_per_address=reader.parse(
                "LMS_RESET_LIMIT_PER_ADDRESS", cls.reset_limit_per_address, parse_limit
            ),
            reset_limit_per_ip=reader.parse(
                "LMS_RESET_LIMIT_PER_IP", cls.reset_limit_per_ip, parse_limit
            ),
            rate_limits=reader.parse("LMS_RATE_LIMITS", cls.rate_limits, parse_edge_limits),
            max_sockets_per_user=reader.parse(
                "LMS_MAX_SOCKETS_PER_USER", cls.max_sockets_per_user, _int_between(1, 10_000)
            ),
            slow_sql_ms=reader.parse(
                "LMS_SLOW_SQL_MS", cls.slow_sql_ms, _int_between(1, 3_600_000)
            ),
        )
        if settings.db_pool_min > settings.db_pool_max:
            reader.problems.append(
                f"LMS_DB_POOL_MIN={settings.db_pool_min} exceeds "
                f"LMS_DB_POOL_MAX={settings.db_pool_max}"
            )
        if reader.problems:
            raise ConfigError(reader.problems)
        return settings

    def with_secret(self) -> Settings:
        """The embedded default's secret: generated once and kept in the data dir, so tokens
        survive a restart without anyone having to invent a key. Media URLs are signed with a
        key derived from it unless LMS_MEDIA_KEYS names keys of their own."""
        settings = self
        if not settings.secret_key:
            path = self.data_dir / "secret_key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(48))
                path.chmod(0o600)
            settings = replace(settings, secret_key=path.read_text().strip())
        if not settings.media_keys:
            settings = replace(settings, media_keys=(derived_key(settings.secret_key),))
        return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str) -> str:
        return self.env.get(name, default)

    def parse(
        self,
        name: str,
        default: T,
        parse: Callable[[str], T],
        *,
        required_because: str = "",
    ) -> T:
        raw = self.env.get(name)
        if raw is None or raw == "":
            if default is None and required_because:
                self.problems.append(f"{name} is not set; {required_because}")
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append(f"{name}={_shown(name, raw)!r}: {exc}")
            return default


def _shown(name: str, raw: str) -> str:
    """`raw` as an error may print it: a secret not at all, a URL without its password."""
    if "SECRET" in name or name.endswith(("_KEYS", "_DSN")):
        return "<hidden>"
    return _without_password(raw)


def _without_password(raw: str) -> str:
    """`raw` with a URL's password masked (`user:***@host`, `?password=***`); all of it hidden
    when urllib cannot read it."""
    try:
        parts = urlsplit(raw)
    except ValueError:  # a netloc urllib cannot read (bad brackets) may still hold a password
        return "<hidden>"
    shown = raw
    if parts.password:
        # urllib splits the user part off at the netloc's last "@": so do we.
        userinfo, _, host = parts.netloc.rpartition("@")
        shown = raw.replace(parts.netloc, f"{userinfo.partition(':')[0]}:***@{host}", 1)
    return _PASSWORD_PARAMETER.sub(r"\1***", shown)  # libpq reads ?password= too


_PASSWORD_PARAMETER = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= value <= 3600:
        raise ValueError("expected 0 to 3600 seconds")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        return raw

    return parse


def _origin(raw: str) -> str:
    """An http(s) origin, optionally with a path prefix; no trailing slash, query or fragment."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected a URL starting with http:// or https:// and naming a host")
    parts.port  # noqa: B018 (raises ValueError on a port that is not a number in range)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("expected an origin or a path prefix: no query, fragment or user")
    return raw.rstrip("/")


_LOCATION = re.compile(r"^/(?:[A-Za-z0-9_\-]+/)+$")


def _internal_location(raw: str) -> str:
    if _LOCATION.match(raw) is None:
        raise ValueError('expected a location path starting and ending with "/", e.g. /_media/')
    return raw


def _smtp_url(raw: str) -> str:
    parse_smtp_url(raw)
    return raw


def _mail_from(raw: str) -> str:
    """An address for `From:`, "Name <user@host>" or "user@host", on one line."""
    _, address = parseaddr(raw)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c in raw for c in "\r\n"):
        raise ValueError('expected an address such as "LMS <noreply@example.org>"')
    return raw


def _sentry_dsn(raw: str) -> str:
    """A Sentry DSN: http(s)://<public key>@host/<project id>."""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.username or not parts.hostname:
        raise ValueError("expected a Sentry DSN such as https://<key>@sentry.example.org/1")
    if not parts.path.strip("/").rpartition("/")[2].isdigit():
        raise ValueError("expected the DSN to end with the project's number, as in .../1")
    return raw


def _secret(raw: str) -> str:
    if len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return raw
