"""Output files that appear whole or not at all.

Every file a job publishes is written under a `.part` name and renamed into place when complete
(a rename within a directory is atomic), so a player, the pool or a person looking at the
directory never finds half a file under a final name. A failed job `discard`s everything it
staged or published, so nothing of it stays behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PART_SUFFIX = ".part"


def part_path(path: Path) -> Path:
    return path.with_name(path.name + PART_SUFFIX)


def write_whole(path: Path, data: bytes) -> None:
    """Write `path` through its `.part` name: readers see the old content or the new."""
    part = part_path(path)
    part.write_bytes(data)
    os.replace(part, path)


class Staging:
    """The files and directories one job writes under `outdir`, named relative to it.

    Paths are registered from the job's main thread; `publish` may be called from any thread.
    """

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self._files: list[Path] = []
        self._dirs: list[Path] = []

    def part(self, name: str) -> Path:
        """Where to write the file to be published as `name`."""
        path = self.outdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._files.append(path)
        return part_path(path)

    def publish(self, name: str) -> str:
        """Move the complete `.part` file to its final name; returns `name`."""
        path = self.outdir / name
        os.replace(part_path(path), path)
        return name

    def write(self, name: str, data: bytes) -> str:
        """Stage and publish a file whose whole content is at hand; returns `name`."""
        self.part(name)
        write_whole(self.outdir / name, data)
        return name

    def live_dir(self, name: str) -> Path:
        """An empty directory whose files are published one by one as they complete (HLS)."""
        path = self.outdir / name
        shutil.rmtree(path, ignore_errors=True)  # a retried job must not list stale segments
        path.mkdir(parents=True)
        self._dirs.append(path)
        return path

    def discard(self) -> None:
        """Remove everything staged or published: the job failed."""
        for path in self._files:
            for candidate in (path, part_path(path)):
                candidate.unlink(missing_ok=True)
        for path in self._dirs:
            shutil.rmtree(path, ignore_errors=True)
