from __future__ import annotations

import io

import av
import numpy as np

from media.synthetic import marked_picture
from media.thumbnail import PosterPicker


def frame(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def decode_jpeg(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def offer_video(picker: PosterPicker, seconds: float, black_until: float) -> None:
    draw = marked_picture(320, 180, black_until=black_until)
    for index in range(round(seconds * 10)):
        picker.offer(frame(draw(index, index / 10)), index / 10)


def test_the_poster_is_not_black_when_the_video_fades_in() -> None:
    picker = PosterPicker(duration=10.0, width=320, height=180)
    offer_video(picker, 10.0, black_until=1.8)  # black through 10-15%, content from 20%
    poster = decode_jpeg(picker.jpeg())
    assert poster.shape == (180, 320, 3)
    assert poster.mean() > 60


def test_the_poster_falls_back_to_later_frames_when_the_first_quarter_is_black() -> None:
    picker = PosterPicker(duration=10.0, width=320, height=180)
    offer_video(picker, 10.0, black_until=3.0)
    assert decode_jpeg(picker.jpeg()).mean() > 60


def test_a_large_poster_is_scaled_to_fit_1280x720() -> None:
    picker = PosterPicker(duration=1.0, width=1920, height=1080)
    picker.offer(frame(marked_picture(1920, 1080)(0, 0.0)), 0.0)
    assert decode_jpeg(picker.jpeg()).shape == (720, 1280, 3)


def test_a_video_too_short_to_reach_the_points_still_gets_a_poster() -> None:
    picker = PosterPicker(duration=60.0, width=320, height=180)
    offer_video(picker, 0.5, black_until=0.0)  # the file said 60 s; it had half a second
    assert decode_jpeg(picker.jpeg()).mean() > 60
