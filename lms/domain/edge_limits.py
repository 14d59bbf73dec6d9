"""The edge's rate limits as settings: one `Limit` per thing limited, per whom it is counted
by, and the compact text an operator writes them in.

`LMS_RATE_LIMITS="login_per_ip=60/60,socket_per_user=30/60"` names only what it changes; every
other limit keeps its default. `5/3600` is a burst of 5, refilled at 5 per 3600 seconds (see
`lms/domain/token_bucket.py`).

The defaults leave room for a classroom behind one address (a school's NAT: dozens of
learners logging in and connecting at the start of a lesson) while making guessing slow where
it matters: a password is guessed per e-mail address, whatever the address it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from lms.domain.token_bucket import Limit


def parse_limit(raw: str) -> Limit:
    """`"5/3600"`: a burst of 5, refilled at 5 per 3600 seconds."""
    count, _, seconds = raw.partition("/")
    try:
        capacity, period = int(count), float(seconds)
    except ValueError:
        raise ValueError("expected requests/seconds, such as 5/3600") from None
    if not 1 <= capacity <= 1_000_000 or not 0 < period <= 366 * 86_400:
        raise ValueError("expected 1 to 1000000 requests per 0 to 31622400 seconds")
    return Limit(capacity, capacity / period)


@dataclass(frozen=True)
class EdgeLimits:
    """Each limit is counted per client address (`_per_ip`), per account (`_per_user`), or per
    e-mail address typed in (`_per_address`). `DEFAULT_EDGE_LIMITS` holds the defaults."""

    login_per_address: Limit
    login_per_ip: Limit
    register_per_ip: Limit
    refresh_per_ip: Limit
    upload_per_user: Limit
    upload_per_ip: Limit
    socket_per_user: Limit
    socket_per_ip: Limit
    announce_per_user: Limit
    announce_per_ip: Limit

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


DEFAULT_EDGE_LIMITS = EdgeLimits(
    # A password is guessed per address: 10 tries, then one a minute.
    login_per_address=Limit(10, 10 / 600),
    login_per_ip=Limit(60, 60 / 60),
    register_per_ip=Limit(30, 30 / 600),
    # Every client refreshes its token every few minutes, and a NAT holds many clients.
    refresh_per_ip=Limit(300, 300 / 60),
    # Upload creations (tus) and one-request uploads; their bytes are bounded elsewhere.
    upload_per_user=Limit(60, 60 / 3600),
    upload_per_ip=Limit(120, 120 / 3600),
    # WebSockets opened (not open at once: LMS_MAX_SOCKETS_PER_USER bounds those); a node's
    # restart reconnects all its clients at once.
    socket_per_user=Limit(30, 30 / 60),
    socket_per_ip=Limit(300, 300 / 60),
    announce_per_user=Limit(10, 10 / 60),
    announce_per_ip=Limit(30, 30 / 60),
)


def parse_edge_limits(raw: str) -> EdgeLimits:
    """`"login_per_ip=60/60,socket_per_user=30/60"` over the defaults.

    Raises:
      ValueError: naming every entry that is not `name=requests/seconds` with a known name.
    """
    changed: dict[str, Limit] = {}
    problems = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, equals, value = (part.strip() for part in entry.partition("="))
        if not equals or name not in EdgeLimits.names():
            problems.append(f"{entry!r} is not name=requests/seconds with a known name")
            continue
        try:
            changed[name] = parse_limit(value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        known = ", ".join(EdgeLimits.names())
        raise ValueError(f"{'; '.join(problems)} (names: {known})")
    return replace(DEFAULT_EDGE_LIMITS, **changed)
