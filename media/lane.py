"""A lane: one thread that scales, encodes and muxes for some renditions.

The decoding thread hands every lane the same decoded pictures and audio packets through the
lane's bounded queue; when a lane falls behind, its full queue stops the decoder (memory stays
bounded by the queue depths). PyAV releases the GIL while scaling, encoding and muxing, so the
lanes run in parallel with each other and with decoding.

A lane that fails keeps taking items (and drops them) until told to stop, so the decoding
thread never blocks on it; the decoding thread sees `error` and raises it.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from av.packet import Packet
from av.video.frame import VideoFrame

from media.rendition import FinishedRendition, RenditionWriter

# Items waiting per lane (pictures and audio packets). Each waiting picture holds a decoded
# frame (3 MB at 1080p); more depth bought no speed in tests/bench/transcode.py, 64 cost 60 MB
# more than 16, and 8 costs 8 MB less than 16 at the same speed (4 is slower).
QUEUE_DEPTH = 8


@dataclass(frozen=True, slots=True)
class VideoItem:
    frame: VideoFrame  # shared by every lane: read-only
    ticks: range  # the output frames it fills


@dataclass(frozen=True, slots=True)
class AudioItem:
    packet: Packet  # shared by every lane: each rendition muxes its own copy


Item = VideoItem | AudioItem


class Lane:
    def __init__(self, writers: list[RenditionWriter], depth: int = QUEUE_DEPTH) -> None:
        self._writers = writers
        self.error: BaseException | None = None
        self._queue: queue.Queue[Item | None] = queue.Queue(depth)
        self._abandoned = False
        self._finished: list[FinishedRendition] = []
        name = "lane-" + "-".join(w.rung.label for w in writers)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Item) -> None:
        """Queue an item for every rendition of the lane; waits while the queue is full."""
        if self.error is not None:
            raise self.error
        self._queue.put(item)

    def end_input(self) -> None:
        """No more items: the lane finishes its renditions and stops."""
        self._queue.put(None)

    def join(self) -> list[FinishedRendition]:
        """Wait for the lane to stop; its finished renditions, or its error raised."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self._finished

    def abandon(self) -> None:
        """Stop at once, publishing nothing (the job failed); safe after `end_input` too."""
        self._abandoned = True
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None and not self._abandoned:
                self._feed(item)
        if self.error is None and not self._abandoned:
            try:
                self._finished = [writer.finish() for writer in self._writers]
            except BaseException as exc:  # raised in the decoding thread by `join`
                self.error = exc
        if self.error is not None or self._abandoned:
            for writer in self._writers:
                writer.close()

    def _feed(self, item: Item) -> None:
        try:
            for writer in self._writers:
                if isinstance(item, VideoItem):
                    writer.add_video(item.frame, item.ticks)
                else:
                    writer.add_audio(item.packet)
        except BaseException as exc:  # raised in the decoding thread by `put` or `join`
            self.error = exc
