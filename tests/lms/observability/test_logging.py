"""Logging set-up: a module's logger follows the configuration in force when it logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from lms.accounts import service
from lms.observability.logging import REDACTED, configure_logging, info_line


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


def test_a_field_named_like_a_credential_is_logged_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(authorization="Bearer bound-token-Xq81")
    try:
        service.log.info("slip", password="hunter2-Pw93", refresh_token="rt-Lm27", user_id=7)
    finally:
        structlog.contextvars.clear_contextvars()
    [line] = capsys.readouterr().err.splitlines()
    assert not [value for value in ("hunter2-Pw93", "rt-Lm27", "bound-token-Xq81") if value in line]
    logged = json.loads(line)
    assert logged["password"] == logged["refresh_token"] == logged["authorization"] == REDACTED
    assert logged["user_id"] == 7


def test_a_library_record_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(token="bound-token-Vc55")
    try:
        logging.getLogger("somelibrary").warning("connected")
    finally:
        structlog.contextvars.clear_contextvars()
    logged = json.loads(capsys.readouterr().err)
    assert (logged["event"], logged["token"]) == ("connected", REDACTED)


def test_an_access_line_has_the_shape_of_any_other_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json")
    structlog.get_logger("lms.observability.requests").info("request", status=200, user_id=None)
    info_line("lms.observability.requests")("request", status=200, user_id=None)
    through_chain, written = map(json.loads, capsys.readouterr().err.splitlines())
    assert through_chain.keys() == written.keys()
    for line in (through_chain, written):
        del line["timestamp"]
    assert through_chain == written


def test_access_lines_follow_a_later_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    configure_logging("warning", "json")
    info_line("lms.observability.requests")("request", status=200)
    assert capsys.readouterr().err == ""
