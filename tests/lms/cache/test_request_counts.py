"""The most requested keys, in bounded memory."""

from __future__ import annotations

from lms.cache.request_counts import RequestCounts


def test_the_most_requested_keys_come_first_and_a_prefix_selects_them() -> None:
    counts = RequestCounts()
    for key, times in (("analytics:course:1", 3), ("analytics:course:2", 5), ("user:9", 9)):
        for _ in range(times):
            counts.count(key)
    assert counts.most_requested(2, prefix="analytics:course:") == [
        ("analytics:course:2", 5),
        ("analytics:course:1", 3),
    ]
    assert counts.most_requested(1) == [("user:9", 9)]


def test_a_long_tail_of_keys_asked_once_does_not_push_out_the_popular_ones() -> None:
    counts = RequestCounts(capacity=10)
    for _ in range(5):
        counts.count("popular")
    for n in range(1000):
        counts.count(f"once:{n}")
    assert counts.most_requested(1) == [("popular", 5)]
    assert len(counts.most_requested(10_000)) <= 20
