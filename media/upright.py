"""Pictures turned upright, as the source's display matrix asks (phones film sideways)."""

from __future__ import annotations

import av.filter
from av.video.frame import VideoFrame

# libavfilter chains per clockwise rotation, as the ffmpeg command line inserts them.
_CHAINS = {
    90: (("transpose", "clock"),),
    180: (("hflip", None), ("vflip", None)),
    270: (("transpose", "cclock"),),
}


class Upright:
    """Turns each decoded picture by `rotation` degrees clockwise (0: passes it through).

    Turned once in the decoding thread, before any scaling, so every rendition, the poster and
    the storyboard all see the picture as it is meant to be seen.
    """

    def __init__(self, rotation: int) -> None:
        self._chain = _CHAINS.get(rotation, ())
        self._graph: av.filter.Graph | None = None

    def __call__(self, frame: VideoFrame) -> VideoFrame:
        if not self._chain:
            return frame
        if self._graph is None:
            self._graph = self._build(frame)
        self._graph.vpush(frame)
        return self._graph.vpull()

    def _build(self, frame: VideoFrame) -> av.filter.Graph:
        graph = av.filter.Graph()
        nodes = [
            graph.add_buffer(
                width=frame.width,
                height=frame.height,
                format=frame.format,
                time_base=frame.time_base,
            )
        ]
        nodes += [graph.add(name, args) for name, args in self._chain]
        nodes.append(graph.add("buffersink"))
        graph.link_nodes(*nodes)
        graph.configure()
        return graph
