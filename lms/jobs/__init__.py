"""Durable transcode jobs: the queue in PostgreSQL, its rules, and what jobs publish."""
