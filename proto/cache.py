"""What the cache tells other nodes over the Bus (channel `cache:tags`, heard by every node)."""

from __future__ import annotations

import msgspec

CACHE_CHANNEL = "cache:tags"


class TagsInvalidated(msgspec.Struct, frozen=True, gc=False, tag="tags_invalidated"):
    """Entries carrying any of `tags` (`user:42`, `course:7`, `content:9`) are stale: every
    node drops them from its memory tier. One message per `Cache.invalidate` call, however
    many tags it names (a progress batch touches many users and contents at once)."""

    tags: list[str]
