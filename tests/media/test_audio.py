from __future__ import annotations

import av
import numpy as np

from media.audio import SharedAudio


def tone_frame(samples: int = 1024, rate: int = 44_100) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.zeros((1, samples), np.float32), format="fltp", layout="mono"
    )
    frame.sample_rate = rate
    return frame


def encoded_pts(starts: list[float]) -> list[int]:
    audio = SharedAudio(source_channels=1)
    packets = [p for s in starts for p in audio.encode(tone_frame(), s)] + audio.flush()
    audio.close()
    return [p.pts for p in packets]


def test_jittery_timestamps_give_evenly_spaced_packets() -> None:
    # A 1 ms time base rounds 23.2 ms frames to 23 or 24 ms: overlapping by a few samples.
    starts = [round(i * 1024 / 44_100, 3) for i in range(40)]
    pts = encoded_pts(starts)
    assert np.all(np.diff(pts) == 1024)


def test_a_real_gap_in_the_sound_is_kept() -> None:
    starts = [i * 1024 / 44_100 for i in range(20)]
    starts += [1.0 + s for s in starts]  # half a second of silence missing
    pts = encoded_pts(starts)
    steps = np.diff(pts)
    assert np.all(steps >= 1024)
    assert steps.max() > 0.4 * 48_000
