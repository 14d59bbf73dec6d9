"""The two-tier, tag-invalidated cache (`cache.py`): a memory tier per node (`memory_tier.py`)
in front of the Redis tier (`redis_tier.py`, over `lms/store/cache_tier.py`), single-flight
misses (`single_flight.py`), invalidations to every node over the Bus."""
