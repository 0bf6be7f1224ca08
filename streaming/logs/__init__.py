"""Event-log backends, chosen by `STREAM_LOG_BACKEND` (a dotted path, like `SESSION_ENGINE`).
Unset, it is `streaming.logs.redis.RedisEventLog` when `REDIS_URL` is set, else the
in-process `streaming.logs.memory.MemoryEventLog`."""

import asyncio
import weakref
from typing import cast

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Backend, EventLog, Inbox, LogUnavailable, RunEnded, RunRegistry

__all__ = [
    "Backend", "EventLog", "Inbox", "LogUnavailable", "RunEnded", "RunRegistry", "close_event_logs",
    "event_log", "run_registry",
]

_process: dict[str, Backend] = {}
# Backends whose connections belong to one event loop: one instance per loop (daphne has one).
_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Backend]]" = (
    weakref.WeakKeyDictionary()
)


REDIS = "streaming.logs.redis.RedisEventLog"
MEMORY = "streaming.logs.memory.MemoryEventLog"


def backend_path() -> str:
    return settings.STREAM_LOG_BACKEND or (REDIS if settings.REDIS_URL else MEMORY)


def _backend() -> Backend:
    path = backend_path()
    key = f"{path} {settings.REDIS_URL or ''}"
    found = _process.get(key)
    if found is not None:
        return found
    per_loop = _per_loop.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(key)
    if found is None:
        cls = cast(type[Backend], import_string(path))
        found = cls.from_settings()
        (_process if found.per_process else per_loop)[key] = found
    return found


def event_log() -> EventLog:
    """The configured event log for the running event loop."""
    return _backend()


def run_registry() -> RunRegistry:
    """The configured run registry for the running event loop."""
    return _backend()


async def close_event_logs() -> None:
    """Close this loop's backends (at shutdown, and between tests)."""
    for backend in _per_loop.pop(asyncio.get_running_loop(), {}).values():
        await backend.close()
