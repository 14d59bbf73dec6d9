"""A page driver runs Playwright in its own process (its sync API owns its thread) and reports
what the page showed as JSON lines on stdout; these read them from a trio test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tests.e2e.nodes import output_lines


@asynccontextmanager
async def page_driver(
    module: str, *args: str, log_path: Path, deadline: float
) -> AsyncIterator[AsyncIterator[dict]]:
    """Run `python -m module *args` and hand its reports over; it must finish within `deadline`
    seconds and exit 0 (its stderr, in `log_path`, is the failure's message)."""
    command = [sys.executable, "-m", module, *args]
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )

    async def reports() -> AsyncIterator[dict]:
        async for line in output_lines(process.stdout):
            yield json.loads(line)

    try:
        with trio.fail_after(deadline):
            yield reports()
            code = await process.wait()
        assert code == 0, await trio.Path(log_path).read_text()
    finally:
        process.kill()
        await process.wait()


async def next_report(reports: AsyncIterator[dict], log_path: Path) -> dict:
    """The driver's next report; a driver that ended without one fails with its log."""
    seen = await anext(reports, None)
    assert seen is not None, await trio.Path(log_path).read_text()
    return seen
