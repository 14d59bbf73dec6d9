from __future__ import annotations

from pathlib import Path

import pytest

from media import hls

EVENT_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
segment_00000.m4s
#EXTINF:1.500000,
segment_00001.m4s
"""


def test_the_codecs_name_comes_from_the_sequence_parameter_set() -> None:
    annex_b = bytes.fromhex("0000000167640028acd9") + b"\x00\x00\x00\x01\x68\xeb"
    assert hls.avc_codecs_tag(annex_b) == "avc1.640028"
    avcc = bytes.fromhex("014d401fffe1")
    assert hls.avc_codecs_tag(avcc) == "avc1.4d401f"
    with pytest.raises(ValueError, match=r"no H\.264"):
        hls.avc_codecs_tag(b"\x00\x00\x00\x01\x68\xeb")


def test_the_master_playlist_lists_each_variant_with_what_players_need() -> None:
    variants = [
        hls.Variant("720p/index.m3u8", 1280, 720, 30.0, "avc1.64001f,mp4a.40.2", 3_000_000),
        hls.Variant("360p/index.m3u8", 640, 360, 30.0, "avc1.64001e,mp4a.40.2", 900_000, 700_000),
    ]
    lines = hls.master_playlist(variants).splitlines()
    assert lines[0] == "#EXTM3U"
    assert lines[3:] == [
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360,"
        'FRAME-RATE=30.000,CODECS="avc1.64001e,mp4a.40.2"',
        "360p/index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,"
        'FRAME-RATE=30.000,CODECS="avc1.64001f,mp4a.40.2"',
        "720p/index.m3u8",
    ]


def test_a_playlist_is_playable_once_it_lists_a_segment(tmp_path: Path) -> None:
    playlist = tmp_path / hls.PLAYLIST
    assert not hls.lists_a_segment(playlist)
    playlist.write_text(EVENT_PLAYLIST.split("#EXTINF")[0])
    assert not hls.lists_a_segment(playlist)
    playlist.write_text(EVENT_PLAYLIST)
    assert hls.lists_a_segment(playlist)


def test_a_finished_playlist_becomes_vod(tmp_path: Path) -> None:
    playlist = tmp_path / hls.PLAYLIST
    playlist.write_text(EVENT_PLAYLIST + "#EXT-X-ENDLIST\n")
    hls.finish_playlist(playlist)
    text = playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert "EVENT" not in text
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert list(tmp_path.iterdir()) == [playlist]


def test_bandwidth_is_measured_on_the_segments(tmp_path: Path) -> None:
    playlist = tmp_path / hls.PLAYLIST
    playlist.write_text(EVENT_PLAYLIST)
    (tmp_path / "init.mp4").write_bytes(b"i" * 1000)
    (tmp_path / "segment_00000.m4s").write_bytes(b"s" * 250_000)  # 1 Mbit/s over 2 s
    (tmp_path / "segment_00001.m4s").write_bytes(b"s" * 375_000)  # 2 Mbit/s over 1.5 s
    assert hls.measure_bandwidth(playlist) == hls.Bandwidth(peak=2_000_000, average=1_428_571)
