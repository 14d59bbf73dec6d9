"""Progress reports for a whole job: which stage, how far, how fast, how long to go."""

from __future__ import annotations

import time
from collections.abc import Callable

from proto.media import Progress, WorkerFrame

# Share of the job's wall time spent decoding and encoding; packaging (closing files, moving the
# MP4 index to the front, the poster and storyboard) takes the rest.
TRANSCODE_SHARE = 0.97
INTERVAL = 0.5  # seconds between two reports of the same stage; a new stage is reported at once


class ProgressMeter:
    """Turns "this far into the video" into `Progress` frames, at most one per `INTERVAL`."""

    def __init__(
        self, send: Callable[[WorkerFrame], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.duration = 0.0  # seconds of video, once probed
        self._send = send
        self._clock = clock
        self._started = clock()
        self._last_report = -INTERVAL
        self._last_stage = ""
        self.frames_done = 0

    def probing(self) -> None:
        self._report("probing", 0.0, force=True)

    def transcoding(self, seconds_done: float, frames_done: int) -> None:
        """The decoder is `seconds_done` into the video, `frames_done` output frames made."""
        self.frames_done = frames_done
        share = min(1.0, max(0.0, seconds_done / self.duration)) if self.duration else 0.0
        self._report("transcoding", TRANSCODE_SHARE * share)

    def packaging(self, frames_done: int) -> None:
        self.frames_done = frames_done
        self._report("packaging", TRANSCODE_SHARE, force=True)

    def done(self) -> None:
        self._report("packaging", 1.0, force=True)

    def _report(self, stage: str, fraction: float, *, force: bool = False) -> None:
        now = self._clock()
        if not force and stage == self._last_stage and now - self._last_report < INTERVAL:
            return
        self._last_report = now
        self._last_stage = stage
        elapsed = now - self._started
        fps = self.frames_done / elapsed if elapsed > 0 else 0.0
        eta = round(elapsed * (1 - fraction) / fraction, 1) if 0 < fraction < 1 else None
        self._send(Progress(stage, round(fraction, 4), self.frames_done, round(fps, 1), eta))
