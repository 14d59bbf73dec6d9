from __future__ import annotations

import io
import itertools
import math
import re

import av

from media.storyboard import StoryboardBuilder, tile_interval
from media.synthetic import marked_picture

CUE = re.compile(
    r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)"
)


def build(duration: float, width: int = 320, height: int = 180) -> StoryboardBuilder:
    board = StoryboardBuilder(duration, width, height, interval=1.0)
    draw = marked_picture(width, height)
    for index in range(round(duration * 10)):
        rgb = draw(index, index / 10)
        board.offer(av.VideoFrame.from_ndarray(rgb, format="rgb24"), index / 10)
    return board


def test_cues_cover_the_video_and_point_at_tiles_inside_the_sprite() -> None:
    board = build(12.5)
    with av.open(io.BytesIO(board.jpeg())) as container:
        sprite = next(container.decode(video=0)).to_ndarray(format="rgb24")
    cues = CUE.findall(board.vtt("storyboard.jpg"))
    assert board.vtt("storyboard.jpg").startswith("WEBVTT\n")
    assert len(cues) == 13
    assert (cues[0][0], cues[-1][1]) == ("00:00:00.000", "00:00:12.500")
    assert all(cue[1] == later[0] for cue, later in itertools.pairwise(cues))  # no gaps
    assert {cue[2] for cue in cues} == {"storyboard.jpg"}
    for *_, x, y, w, h in cues:
        x, y, w, h = int(x), int(y), int(w), int(h)
        assert (w, h) == (160, 90)
        assert x + w <= sprite.shape[1]
        assert y + h <= sprite.shape[0]
        assert sprite[y : y + h, x : x + w].mean() > 40  # a picture, not the empty sheet
    assert sprite.shape == (180, 1600, 3)  # 10 tiles a row, 2 rows


def test_portrait_tiles_are_portrait() -> None:
    board = build(2.0, width=180, height=320)
    assert (board.tile_width, board.tile_height) == (90, 160)


def test_long_videos_get_fewer_tiles() -> None:
    assert tile_interval(60) == 1
    assert tile_interval(3600) == 36
    board = StoryboardBuilder(3600, 1920, 1080)
    assert board.count == 100
    rows = math.ceil(board.count / board.columns)
    assert (board.columns * board.tile_width, rows * board.tile_height) == (1600, 900)
