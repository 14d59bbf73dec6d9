from __future__ import annotations

import pytest

from media.preview import PreviewWindow, preview_window


def test_the_preview_starts_a_tenth_into_the_video() -> None:
    assert preview_window(60.0, 10.0) == PreviewWindow(6.0, 16.0)
    assert preview_window(3600.0, 10.0) == PreviewWindow(360.0, 370.0)


def test_a_short_video_is_previewed_from_as_early_as_needed_to_fill_the_clip() -> None:
    assert preview_window(12.0, 10.0) == PreviewWindow(pytest.approx(1.2), pytest.approx(11.2))
    assert preview_window(4.0, 10.0) == PreviewWindow(0.0, 10.0)


def test_no_seconds_no_preview() -> None:
    assert preview_window(60.0, 0.0) is None
