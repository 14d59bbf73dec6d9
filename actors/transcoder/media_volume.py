"""Where the transcoder pool puts files on the media volume, and the moves it makes there.

    work/<lease_id>/                 what one attempt is writing (the worker's `outdir`)
    videos/<content_id>/<lease_id>/  a finished attempt, published by renaming its work dir

Work dirs and published dirs live on one volume, so publishing is one atomic rename: a player
sees either the old video or the complete new one, never a half-written folder. Every call runs
in a thread, because file-system calls block.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import trio


class MediaVolume:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative

    def redacted(self, text: str) -> str:
        """`text` (an error a person reads) with the volume's own paths made relative to it:
        where the volume is mounted on this server is nobody else's business."""
        return text.replace(f"{self.root}/", "").replace(str(self.root), "the media volume")

    @staticmethod
    def workdir(lease_id: str) -> str:
        return f"work/{lease_id}"

    @staticmethod
    def published(content_id: int, lease_id: str) -> str:
        return f"videos/{content_id}/{lease_id}"

    async def prepare(self, workdir: str, stale: str | None) -> None:
        """Make an empty `workdir`, removing `stale` (a previous attempt's) first."""

        def prepare() -> None:
            if stale is not None:
                shutil.rmtree(self.path(stale), ignore_errors=True)
            path = self.path(workdir)
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)

        await trio.to_thread.run_sync(prepare)

    async def publish(self, workdir: str, published: str) -> None:
        def publish() -> None:
            target = self.path(published)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.path(workdir).rename(target)

        await trio.to_thread.run_sync(publish)

    async def remove(self, relative: str) -> None:
        await trio.to_thread.run_sync(
            lambda: shutil.rmtree(self.path(relative), ignore_errors=True)
        )
