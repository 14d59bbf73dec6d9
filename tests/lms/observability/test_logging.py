"""Logging set-up: a module's logger follows the configuration in force when it logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from lms.accounts import service
from lms.observability.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def test_a_module_logger_already_used_follows_a_later_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    service.log.info("first_event", n=1)  # a cached logger would be frozen from here on
    [line] = capsys.readouterr().err.splitlines()
    logged = json.loads(line)
    assert (logged["event"], logged["n"], logged["level"]) == ("first_event", 1, "info")

    elsewhere = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(elsewhere),
    )
    service.log.info("second_event", n=2)
    assert json.loads(elsewhere.getvalue()) == {"event": "second_event", "n": 2}
    assert capsys.readouterr().err == ""
