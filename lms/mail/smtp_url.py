"""LMS_SMTP_URL read into where and how to send mail. Pure (no aiosmtplib), so settings can
validate it at start.

    smtp://user:pass@host:587?starttls=1   plain connection upgraded with STARTTLS (required)
    smtp://host:25                         plain SMTP, e.g. a relay on the same network
    smtps://user:pass@host                 TLS from the first byte (port 465 by default)

The user and password are percent-decoded (`%40` for an `@` in a user name). A target's repr
hides the password: settings end up in logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool  # smtps://
    starttls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where mail goes, for people: host, port and how it is secured; never the password."""
        security = "TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "no TLS"
        user = f"{self.username}@" if self.username else ""
        return f"SMTP {user}{self.host}:{self.port} ({security})"


def parse_smtp_url(raw: str) -> SmtpTarget:
    """Raises ValueError saying what is wrong (never quoting the password)."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ValueError("expected smtp://[user:password@]host[:port][?starttls=1]") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError("expected a URL starting with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("expected a host, as in smtp://mail.example.org:587?starttls=1")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("expected no path or fragment after the host")
    starttls = False
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "starttls":
            raise ValueError(f"unknown parameter {name!r}; the only one is starttls")
        if value.lower() not in _FLAGS:
            raise ValueError("starttls must be 1 or 0")
        starttls = _FLAGS[value.lower()]
    if starttls and parts.scheme == "smtps":
        raise ValueError("smtps:// is TLS from the start: starttls applies to smtp:// only")
    if (parts.password is None) != (parts.username is None):
        raise ValueError("expected both a user and a password, or neither")
    return SmtpTarget(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[parts.scheme],
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )
