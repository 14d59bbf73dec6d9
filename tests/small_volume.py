"""A small tmpfs as a node's media volume, for a test to fill up.

As root it is mounted where the node will look. Otherwise the node runs in a user and mount
namespace of its own (`unshare --user --map-root-user --mount`, allowed without privilege where
user namespaces are), which mounts it there before the node starts; the test then reaches it
through `/proc/<node's pid>/root`, and it vanishes with the node.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SIZE = "8m"
_MOUNT = ("mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs")
_UNSHARE = ("unshare", "--user", "--map-root-user", "--mount")
# Run between the interpreter and `-m lms.cli serve` (start_node's launcher): exec into
# unshare, which mounts LMS_MEDIA_DIR and execs the interpreter again with the rest of argv,
# all in one process, so the node keeps the pid the test knows.
_IN_OWN_NAMESPACE = f"""
import os, shlex, sys
mount = shlex.join([*{_MOUNT!r}, os.environ["LMS_MEDIA_DIR"]])
argv = [sys.executable, *sys.argv[1:]]
os.execvp("unshare", [*{_UNSHARE!r}, "sh", "-c", mount + ' && exec "$@"', "sh", *argv])
"""


class CannotMount(Exception):
    """Neither mounting here nor a namespace of the node's own works on this machine."""


@dataclass(frozen=True)
class SmallVolume:
    path: Path  # where the node finds it: its LMS_MEDIA_DIR
    launcher: tuple[str, ...]  # for `start_node`: () when it is mounted here

    def seen_from_here(self, node_pid: int) -> Path:
        """Where this process reaches the volume of the node with pid `node_pid`."""
        if not self.launcher:
            return self.path
        return Path(f"/proc/{node_pid}/root") / self.path.relative_to("/")


@contextmanager
def small_volume(path: Path) -> Iterator[SmallVolume]:
    """A `SIZE` tmpfs at `path` (made here), unmounted afterwards. Raise `CannotMount`, saying
    why, when this machine allows neither way."""
    path.mkdir()
    here = _run(*_MOUNT, str(path))
    if here.returncode == 0:
        try:
            yield SmallVolume(path, ())
        finally:
            _run("umount", "--lazy", str(path))
        return
    own = _run(*_UNSHARE, *_MOUNT, str(path))
    if own.returncode != 0:
        raise CannotMount(f"{shlex.join(_MOUNT)}: {here.stderr.strip()}; {own.stderr.strip()}")
    yield SmallVolume(path, ("-c", _IN_OWN_NAMESPACE))


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)
