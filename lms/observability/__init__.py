"""Logs, metrics and health reporting."""
