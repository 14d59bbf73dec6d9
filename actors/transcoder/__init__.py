"""The TranscoderPool actor and what it runs: attempts at jobs, in worker processes."""

from .figures import TranscodeFigures, TranscoderStatistics
from .pool import MAILBOX_CAPACITY, PoolConfig, TranscoderPool
from .queue import JobQueue, QueueUnavailable

__all__ = [
    "MAILBOX_CAPACITY",
    "JobQueue",
    "PoolConfig",
    "QueueUnavailable",
    "TranscodeFigures",
    "TranscoderPool",
    "TranscoderStatistics",
]
