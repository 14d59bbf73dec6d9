"""The dashboards: answers computed from the store and the pure rules, kept in the cache
(`service.py`), and the cache tags each change outdates (`tags.py`, `invalidations.py`)."""
