"""Take a throwaway Redis away and bring it back on the same port, for outage tests."""

from __future__ import annotations

import subprocess

from tests.services import RunningRedis, _wait_for_pong

RESTART_DEADLINE = 10.0


def restart_redis(stopped: RunningRedis) -> RunningRedis:
    """Start `stopped` again with the same command line (port, directory); return once it
    answers PING. The caller stops the old one first (`stopped.stop()`)."""
    with stopped.log_file.open("ab") as log:
        process = subprocess.Popen(
            stopped.process.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    running = RunningRedis(stopped.url, stopped.port, process, stopped.log_file)
    try:
        _wait_for_pong(running, RESTART_DEADLINE)
    except BaseException:
        running.stop()
        raise
    return running
