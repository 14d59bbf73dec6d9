"""The memory tier, without trio: hits until expiry, LRU by bytes, tags."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lms.cache.memory_tier import MemoryTier


def test_a_stored_value_is_a_hit_until_it_expires() -> None:
    tier = MemoryTier(max_bytes=1000)
    tier.put("k", b"value", ["course:1"], expires_at=10.0)
    assert tier.get("k", now=9.9) == b"value"
    assert tier.get("k", now=10.0) is None
    assert tier.get("other", now=0.0) is None
    stats = tier.statistics()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (1, 2, 0, 0)


def test_the_least_recently_used_entries_go_first_when_the_bytes_run_out() -> None:
    tier = MemoryTier(max_bytes=30)  # three entries of 10 bytes: a 1-byte key, 9 of value
    for key in "abc":
        tier.put(key, b"x" * 9, [], expires_at=100.0)
    assert tier.get("a", now=0.0) is not None  # a is now more recent than b
    tier.put("d", b"x" * 9, [], expires_at=100.0)
    assert tier.get("b", now=0.0) is None
    assert all(tier.get(key, now=0.0) for key in "acd")
    tier.put("e", b"x" * 19, [], expires_at=100.0)  # 20 bytes: two entries go
    assert [key for key in "acde" if tier.get(key, now=0.0)] == ["d", "e"]
    stats = tier.statistics()
    assert (stats.evictions, stats.bytes, stats.entries) == (3, 30, 2)


def test_a_value_larger_than_the_whole_bound_is_not_stored_and_evicts_nothing() -> None:
    tier = MemoryTier(max_bytes=10)
    tier.put("a", b"1", [], expires_at=100.0)
    assert not tier.put("big", b"x" * 10, [], expires_at=100.0)
    assert tier.get("a", now=0.0) == b"1"
    assert tier.get("big", now=0.0) is None


def test_invalidating_a_tag_drops_only_the_entries_carrying_it() -> None:
    tier = MemoryTier(max_bytes=1000)
    tier.put("stats:42", b"1", ["user:42"], expires_at=100.0)
    tier.put("course:7", b"2", ["course:7", "content:9"], expires_at=100.0)
    tier.put("course:8", b"3", ["course:8"], expires_at=100.0)
    assert tier.invalidate(["content:9", "user:1"]) == 1
    assert tier.get("course:7", now=0.0) is None
    assert tier.get("stats:42", now=0.0) == b"1"
    assert tier.get("course:8", now=0.0) == b"3"


def test_a_replaced_entry_carries_only_its_new_tags() -> None:
    tier = MemoryTier(max_bytes=1000)
    tier.put("k", b"old", ["course:1"], expires_at=100.0)
    tier.put("k", b"new", ["course:2"], expires_at=100.0)
    assert tier.invalidate(["course:1"]) == 0
    assert tier.get("k", now=0.0) == b"new"
    assert tier.statistics().bytes == len("k") + len("new")


def test_clear_drops_everything() -> None:
    tier = MemoryTier(max_bytes=1000)
    tier.put("a", b"1", ["user:1"], expires_at=100.0)
    tier.put("b", b"2", [], expires_at=100.0)
    assert tier.clear() == 2
    assert tier.get("a", now=0.0) is None
    assert tier.invalidate(["user:1"]) == 0
    assert tier.statistics().bytes == 0


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcdefgh"),
            st.binary(max_size=40),
            st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2),
            st.booleans(),  # invalidate t1 after this put
        ),
        max_size=60,
    )
)
def test_the_bytes_held_are_exact_and_never_exceed_the_bound(
    steps: list[tuple[str, bytes, list[str], bool]],
) -> None:
    tier = MemoryTier(max_bytes=64)
    model: dict[str, tuple[bytes, set[str]]] = {}  # what must still be there, if not evicted
    for key, value, tags, invalidate in steps:
        if tier.put(key, value, tags, expires_at=100.0):
            model[key] = (value, set(tags))
        else:
            model.pop(key, None)
        if invalidate:
            tier.invalidate(["t1"])
            model = {k: v for k, v in model.items() if "t1" not in v[1]}
        held = {k: tier.get(k, now=0.0) for k in model}
        present = {k: v for k, v in held.items() if v is not None}
        assert all(model[k][0] == v for k, v in present.items())  # never a wrong value
        assert tier.statistics().bytes == sum(len(k) + len(v) for k, v in present.items())
        assert tier.statistics().bytes <= 64
        model = {k: model[k] for k in present}
