"""Which renditions a source gets: the ladder, planned from its displayed size alone.

Rungs are named by the short side of the picture (the height of a landscape video, the width of
a portrait one), so a phone video filmed upright gets the same quality names as a slide deck:
1080p, 720p, 480p, 360p. The rules:

- never upscale, and never go above 1080p (lectures gain nothing from more, and storage and
  bandwidth grow with every pixel);
- the top rung is the source's own size when the source is smaller than 1080p, so no detail is
  thrown away: a 400p source gets 400p and 360p; a source within 5% of a standard size takes
  that size's name (1078p is "1080p"), and no standard rung within 10% below the top is kept
  (a 370p source gets one rung, not 370p and 360p);
- the long side keeps the aspect ratio; both sides are even, as 4:2:0 chroma needs;
- each rung's bitrate is capped (maxrate, with a two-second buffer) so a noisy scene cannot
  exceed what its viewers' connections were chosen for; the cap of a non-standard size is the
  360p cap scaled by its pixel count.
"""

from __future__ import annotations

from dataclasses import dataclass

STANDARD_HEIGHTS = (1080, 720, 480, 360)
# Bits per second of video at each standard size; CRF picks less for easy pictures.
STANDARD_CAPS = {1080: 5_000_000, 720: 2_800_000, 480: 1_400_000, 360: 800_000}
_NAME_SNAP = 0.05  # a size this close to a standard one takes its name
_MIN_STEP = 1.1  # a rung below the top is kept only this much smaller than the top
_MIN_CAP = 200_000
_BUFFER_SECONDS = 2


@dataclass(frozen=True)
class Rung:
    label: str  # "720p"
    width: int
    height: int
    maxrate: int  # bits per second of video
    bufsize: int  # bits

    @property
    def pixels(self) -> int:
        return self.width * self.height


def plan_ladder(width: int, height: int) -> list[Rung]:
    """The rungs for a source displayed at width x height, largest first."""
    short, long = sorted((width, height))
    top = _even(min(short, STANDARD_HEIGHTS[0]))
    sizes = [top] + [h for h in STANDARD_HEIGHTS if h * _MIN_STEP <= top]
    return [_rung(size, short, long, portrait=height > width) for size in sizes]


def _rung(size: int, source_short: int, source_long: int, *, portrait: bool) -> Rung:
    # The scaled long side is rounded to the nearest even number, never past the source's.
    long = min(_even(source_long), 2 * round(size * source_long / source_short / 2))
    width, height = (size, long) if portrait else (long, size)
    name = _standard_name(size)
    if name in STANDARD_CAPS:
        maxrate = STANDARD_CAPS[name]
    else:
        standard_pixels = STANDARD_HEIGHTS[-1] * STANDARD_HEIGHTS[-1] * 16 // 9
        maxrate = max(_MIN_CAP, STANDARD_CAPS[360] * width * height // standard_pixels)
    return Rung(f"{name}p", width, height, maxrate, maxrate * _BUFFER_SECONDS)


def _standard_name(size: int) -> int:
    nearest = min(STANDARD_HEIGHTS, key=lambda h: abs(h - size))
    return nearest if abs(nearest - size) <= nearest * _NAME_SNAP else size


def _even(n: int) -> int:
    return max(2, n - n % 2)
