"""What a transcoder pool has done, for `/metrics`: kept by the pool's handle, so the figures
outlive a restarted pool, and updated once per attempt (or per first rendition), never per
progress frame. Also the worker processes running now, for readiness (lms/health.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lms.domain.histogram import Histogram, HistogramSnapshot

# Seconds, for whole transcodes and for the wait until a video plays: 1 s to an hour.
JOB_SECONDS_BOUNDS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
# Seconds of media transcoded per second of wall clock: below 1 a video takes longer than it lasts.
REALTIME_RATIO_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)

if TYPE_CHECKING:
    import trio


@dataclass(frozen=True, slots=True)
class WorkerProcess:
    """A worker process an attempt runs now; `exit_code` is None while it lives."""

    pid: int
    job_id: int
    exit_code: int | None


@dataclass(frozen=True, slots=True)
class TranscoderStatistics:
    """A snapshot of a pool's figures, over the life of the process (restarts included).

    Attributes:
      job_seconds: wall seconds from claim to completion of each attempt that succeeded.
      realtime_ratio: media seconds per wall second of those attempts.
      time_to_playable: seconds from the upload's end (its job queued) to the first rendition
          an attempt made playable.
      retried: attempts that failed and put their job back in the queue (a lease that ran out,
          reaped by this pool, included).
      failed: attempts that failed their job for good.
      workers: the worker processes attempts run now.
    """

    job_seconds: HistogramSnapshot
    realtime_ratio: HistogramSnapshot
    time_to_playable: HistogramSnapshot
    retried: int
    failed: int
    workers: tuple[WorkerProcess, ...]


class TranscodeFigures:
    """Shared by a pool's incarnations and their attempts; read through `statistics()`."""

    def __init__(self) -> None:
        self.job_seconds = Histogram(JOB_SECONDS_BOUNDS)
        self.realtime_ratio = Histogram(REALTIME_RATIO_BOUNDS)
        self.time_to_playable = Histogram(JOB_SECONDS_BOUNDS)
        self.retried = 0
        self.failed = 0
        self._workers: dict[int, trio.Process] = {}  # by job id, from start to exit

    def done(self, wall_seconds: float, media_seconds: float) -> None:
        self.job_seconds.observe(wall_seconds)
        if wall_seconds > 0:
            self.realtime_ratio.observe(media_seconds / wall_seconds)

    def playable(self, since_queued: float) -> None:
        self.time_to_playable.observe(since_queued)

    def attempt_failed(self, *, final: bool) -> None:
        if final:
            self.failed += 1
        else:
            self.retried += 1

    def worker_started(self, job_id: int, process: trio.Process) -> None:
        self._workers[job_id] = process

    def worker_ended(self, job_id: int) -> None:
        self._workers.pop(job_id, None)

    def statistics(self) -> TranscoderStatistics:
        return TranscoderStatistics(
            job_seconds=self.job_seconds.snapshot(),
            realtime_ratio=self.realtime_ratio.snapshot(),
            time_to_playable=self.time_to_playable.snapshot(),
            retried=self.retried,
            failed=self.failed,
            workers=tuple(
                WorkerProcess(process.pid, job_id, process.returncode)
                for job_id, process in self._workers.items()
            ),
        )
