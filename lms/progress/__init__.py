"""Learners' progress: recording heartbeats through the group-commit writer, reading standings."""
