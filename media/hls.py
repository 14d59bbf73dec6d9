"""HLS packaging around FFmpeg's per-rendition muxer: its options, the master playlist (which
the muxer does not write), and the switch from a growing playlist to a finished one.

Each rendition is one `hls` muxer writing fMP4 segments (one second, then two seconds each) into
its own directory.
While the job runs its playlist is of type EVENT (segments are only ever appended, so a player
can start at once); the muxer appends `#EXT-X-ENDLIST` when closed, and `finish_playlist` then
marks it VOD. The segment and playlist files are renamed into place whole (`temp_file`), so a
player never reads half of one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from media.encoding import FIRST_SEGMENT_SECONDS
from media.staging import write_whole

PLAYLIST = "index.m3u8"
_ANNEX_B_SPS = re.compile(rb"\x00\x00\x01[\x27\x47\x67](...)", re.DOTALL)
_EXTINF = re.compile(r"^#EXTINF:([0-9.]+),\s*\n(\S+)", re.MULTILINE)


def muxer_options(directory: Path) -> dict[str, str]:
    """Options for `av.open(directory / PLAYLIST, "w", format="hls", options=...)`."""
    return {
        # A segment ends at the first keyframe this long after its start: with keyframes two
        # seconds apart, after a first one at one second, that is at every keyframe.
        "hls_time": str(FIRST_SEGMENT_SECONDS),
        "hls_list_size": "0",  # keep every segment listed
        "hls_playlist_type": "event",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(directory / "segment_%05d.m4s"),
        "hls_flags": "temp_file+independent_segments",
    }


def avc_codecs_tag(extradata: bytes) -> str:
    """The RFC 6381 name of an H.264 stream ("avc1.64001f"): profile, constraints and level,
    read from its sequence parameter set in the encoder's extradata (avcC or Annex B)."""
    if extradata[:1] == b"\x01":  # avcC: those three bytes follow the version byte
        fields = extradata[1:4]
    else:  # Annex B: they follow the SPS NAL header (NAL type 7)
        sps = _ANNEX_B_SPS.search(extradata)
        fields = sps.group(1) if sps else b""
    if len(fields) != 3:
        raise ValueError("no H.264 sequence parameter set in the extradata")
    return "avc1." + fields.hex()


def lists_a_segment(playlist: Path) -> bool:
    """Whether the playlist exists and lists at least one segment: a player can start."""
    try:
        return "#EXTINF:" in playlist.read_text()
    except FileNotFoundError:
        return False


def finish_playlist(playlist: Path) -> None:
    """Mark a complete (ENDLIST) playlist as VOD: it will never change again."""
    text = playlist.read_text().replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
    write_whole(playlist, text.encode())


@dataclass(frozen=True)
class Bandwidth:
    peak: int  # bits per second of the largest segment
    average: int  # bits per second over the whole playlist


def measure_bandwidth(playlist: Path) -> Bandwidth:
    """The bit rates a master playlist declares for a variant, from its segment files."""
    entries = _EXTINF.findall(playlist.read_text())
    rates = [((playlist.parent / uri).stat().st_size * 8, float(s)) for s, uri in entries]
    rates = [(bits, seconds) for bits, seconds in rates if seconds > 0]
    if not rates:
        raise ValueError(f"{playlist} lists no segment")
    peak = max(bits / seconds for bits, seconds in rates)
    average = sum(bits for bits, _ in rates) / sum(seconds for _, seconds in rates)
    return Bandwidth(round(peak), round(average))


@dataclass(frozen=True)
class Variant:
    uri: str  # relative to the master playlist
    width: int
    height: int
    frame_rate: float
    codecs: str  # "avc1.64001f,mp4a.40.2"
    bandwidth: int  # peak bits per second
    average_bandwidth: int | None = None


def master_playlist(variants: list[Variant]) -> str:
    """The master playlist text, variants listed from the lowest bit rate up."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: v.bandwidth):
        average = f",AVERAGE-BANDWIDTH={v.average_bandwidth}" if v.average_bandwidth else ""
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth}{average},RESOLUTION={v.width}x{v.height},"
            f'FRAME-RATE={v.frame_rate:.3f},CODECS="{v.codecs}"'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
