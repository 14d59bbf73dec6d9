"""structlog set up once per process: JSON lines for machines, key=value lines for people.

Context (request id, actor name) is bound with contextvars; log events are short snake_case
names with fields. Records from libraries that use the standard library's logging (asyncpg,
hypercorn) go through the same renderer, so a JSON log stays one JSON object per line.
Secrets never become fields: tokens and passwords are not passed to loggers. As a last line of
defence against a slip, a field named like a credential (`password`, `token`, `authorization`,
...) is logged as "[redacted]" whatever it holds: one set intersection per line, ~0.5 us next to
the ~23 us of rendering it. It sees field names only; a secret inside a message or a nested
value is the caller's to keep out (tests/e2e/test_log_secrets.py searches a whole node's log).

Loggers: a module holds one, ``log = structlog.get_logger()`` at module level, and an object that
logs with context binds its own from it (``.bind(actor=...)``) when it is made. structlog does
not cache loggers here (`cache_logger_on_first_use=False`): a cached module-level logger is
frozen with the processors and logger factory of its first use, and would ignore any later
`structlog.configure` (a second set-up, a tool's, a test's). Not caching costs ~1.5 us per
call, next to ~23 us for rendering a line (measured here), and no hot path logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

import msgspec
import structlog

# Field names that only ever hold credentials. "key" is not one: cache keys are logged.
SECRET_FIELDS = frozenset(
    {
        "password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "cookie",
        "secret",
        "secret_key",
    }
)
REDACTED = "[redacted]"

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# The handler JSON lines go through, when `configure_logging` chose JSON at info or below;
# None otherwise. `info_line` writes to its stream itself (see it).
_json_lines: logging.StreamHandler[TextIO] | None = None


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    global _json_lines
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        redact_secret_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # see the module's docstring
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    _json_lines = handler if fmt == "json" and _LEVELS[level] <= logging.INFO else None


InfoLine = Callable[..., None]


def info_line(logger_name: str) -> InfoLine:
    """`info(event, **fields)` for a hot event of fixed shape: the access line, one per request.

    With JSON lines configured it renders the line itself, with the fields structlog's chain
    adds (level, logger, timestamp; not the bound context: callers pass their ids) and writes it
    to the log's stream. Through the chain a line costs ~30 us alone and ~200 us of a busy
    node's CPU (tests/bench/edge.py: a quarter of a cached request's cost); this costs a few.
    Otherwise (console lines, a level above info, logging set up by someone else, such as a
    test's `capture_logs`) it is the structlog logger's `info`. Callers never pass secrets, so
    the redaction step is not needed here.
    """
    handler = _json_lines
    if handler is None or handler not in logging.getLogger().handlers:
        return structlog.get_logger(logger_name).bind().info
    encode = msgspec.json.Encoder().encode
    stream, lock = handler.stream, handler.lock
    assert lock is not None  # noqa: S101 - narrows the type: Handler.__init__ makes the lock

    def info(event: str, **fields: object) -> None:
        fields["event"] = event
        fields["level"] = "info"
        fields["logger"] = logger_name
        fields["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = encode(fields).decode() + "\n"
        # The handler's lock: a library logging from a worker thread never splits this line.
        with lock:
            stream.write(line)

    return info


def redact_secret_fields(
    logger: object, method_name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Replace the value of every field named in SECRET_FIELDS (see the module's docstring)."""
    for name in SECRET_FIELDS.intersection(event_dict):
        event_dict[name] = REDACTED
    return event_dict
