"""Event-log backends: Redis when `REDIS_URL` is set, in-process memory otherwise."""

import asyncio
import weakref

from django.conf import settings

from .base import EventLog, Inbox, LogUnavailable
from .memory import MemoryEventLog

__all__ = ["EventLog", "Inbox", "LogUnavailable", "close_event_logs", "event_log"]

_memory: MemoryEventLog | None = None
# Redis connections belong to one event loop: one log object per loop (daphne has one).
_redis: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, EventLog]]" = (
    weakref.WeakKeyDictionary()
)


def event_log() -> EventLog:
    """The configured event log for the running event loop."""
    global _memory
    if not settings.REDIS_URL:
        if _memory is None:
            _memory = MemoryEventLog(
                retention=settings.STREAM_RETENTION_SECONDS, max_events=settings.STREAM_MAX_EVENTS
            )
        return _memory
    from .redis import RedisEventLog

    per_loop = _redis.setdefault(asyncio.get_running_loop(), {})
    log = per_loop.get(settings.REDIS_URL)
    if log is None:
        log = per_loop[settings.REDIS_URL] = RedisEventLog(
            settings.REDIS_URL,
            retention=settings.STREAM_RETENTION_SECONDS,
            max_events=settings.STREAM_MAX_EVENTS,
            fanout=settings.STREAM_FANOUT,
        )
    return log


async def close_event_logs() -> None:
    """Close this loop's Redis logs (at shutdown, and between tests)."""
    for log in _redis.pop(asyncio.get_running_loop(), {}).values():
        await log.close()
