"""In-process event log and run registry: the single-process setup (no `REDIS_URL`)."""

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from ..events import Event
from .base import Inbox, RunEnded, listening

ENDED = "ended"  # the seal of a run whose terminal event is logged


@dataclass
class _RunLog:
    events: list[Event] = field(default_factory=list)
    ended_at: float | None = None
    sealed: str | None = None  # who decides the run's end (see EventLog.seal), or ENDED


class MemoryEventLog:
    """Runs' logs in a dict: live runs, and ended ones for `retention` seconds.

    At most `max_runs` ended runs are kept (oldest dropped first) and at most
    `max_events` events per run, so memory stays bounded.
    """

    per_process = True

    @classmethod
    def from_settings(cls) -> "MemoryEventLog":
        return cls(retention=settings.STREAM_RETENTION_SECONDS, max_events=settings.STREAM_MAX_EVENTS)

    def __init__(self, *, retention: float, max_events: int, max_runs: int = 10_000) -> None:
        self.retention = retention
        self.max_events = max_events
        self.max_runs = max_runs
        self.logs: OrderedDict[str, _RunLog] = OrderedDict()
        self.listeners: dict[str, set[Inbox]] = {}
        self.registry: dict[str, dict[str, Any]] = {}
        self.stops: set[str] = set()
        self.on_stop: Callable[[str], None] | None = None
        self.thread_watchers: dict[str, set[Callable[[dict[str, Any]], None]]] = {}

    def _expire(self) -> None:
        now = time.monotonic()
        ended = [(k, log) for k, log in self.logs.items() if log.ended_at is not None]
        excess = len(ended) - self.max_runs
        for index, (run_id, log) in enumerate(ended):
            if index < excess or now - log.ended_at > self.retention:  # type: ignore[operator]
                del self.logs[run_id]

    def _get(self, run_id: str) -> _RunLog | None:
        log = self.logs.get(run_id)
        ended = log is not None and log.ended_at is not None
        if ended and time.monotonic() - log.ended_at > self.retention:  # type: ignore[union-attr,operator]
            del self.logs[run_id]
            return None
        return log

    def append(
        self, run_id: str, events: list[Event], *, final: bool = False, sealed_by: str = ""
    ) -> "asyncio.Future[None]":
        done = asyncio.get_running_loop().create_future()
        if self._append(run_id, events, final=final, sealed_by=sealed_by):
            done.set_result(None)
        else:
            done.set_exception(RunEnded(run_id))
        return done

    def _append(self, run_id: str, events: list[Event], *, final: bool, sealed_by: str) -> bool:
        """Log what the run takes of `events`; False if it refuses them (its end is decided
        or logged: see `seal`)."""
        log = self.logs.setdefault(run_id, _RunLog())
        if log.sealed is not None and (not final or log.sealed != sealed_by):
            return False
        top = log.events[-1]["seq"] if log.events else 0
        added = [e for e in events if e["seq"] > top]  # a retried append adds nothing
        log.events.extend(added)
        if len(log.events) > self.max_events:
            del log.events[: len(log.events) - self.max_events]
        if final and added:
            log.sealed = ENDED
        if final:
            log.ended_at = time.monotonic()
            self._expire()
        delivered = added if final else events  # a final append: only what the log holds
        if delivered:
            for inbox in self.listeners.get(run_id, ()):
                inbox.deliver(delivered)
        return True

    async def seal(self, run_id: str, who: str, ttl: float) -> bool:
        log = self.logs.setdefault(run_id, _RunLog())
        if log.sealed is None:
            log.sealed = who  # one process: a seal lapses only with the process
        return log.sealed == who

    async def read(self, run_id: str, after_seq: int, *, limit: int | None = None) -> list[Event]:
        log = self._get(run_id)
        if log is None or not log.events:
            return []
        # Sequence numbers are contiguous, so the slice start is arithmetic.
        start = max(0, after_seq - log.events[0]["seq"] + 1)
        return log.events[start : None if limit is None else start + limit]

    async def last(self, run_id: str) -> Event | None:
        log = self._get(run_id)
        return log.events[-1] if log is not None and log.events else None

    async def exists(self, run_id: str) -> bool:
        return self._get(run_id) is not None

    def listen(self, run_id: str) -> contextlib.AbstractAsyncContextManager[Inbox]:
        return listening(self.listeners, run_id)

    async def register(self, run_id: str, meta: dict[str, Any]) -> None:
        self.registry[run_id] = meta

    async def unregister(self, run_id: str) -> None:
        self.registry.pop(run_id, None)
        self.stops.discard(run_id)

    async def meta(self, run_id: str) -> dict[str, Any] | None:
        return self.registry.get(run_id)

    async def watch_stops(self, callback: Callable[[str], None]) -> None:
        self.on_stop = callback

    async def request_stop(self, run_id: str) -> None:
        if run_id in self.registry:
            self.stops.add(run_id)
            if self.on_stop is not None:
                self.on_stop(run_id)

    async def stops_requested(self, run_ids: list[str]) -> set[str]:
        return self.stops.intersection(run_ids)

    async def heartbeat(self, worker_id: str, ttl: float) -> None:
        return None

    async def orphaned_runs(self, worker_id: str) -> list[str]:
        return list(self.registry)  # one process: every run is the caller's own

    async def announce(self, thread_id: str, message: dict[str, Any]) -> None:
        for callback in list(self.thread_watchers.get(thread_id, ())):
            callback(message)

    async def watch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        self.thread_watchers.setdefault(thread_id, set()).add(callback)

    async def unwatch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        watchers = self.thread_watchers.get(thread_id)
        if watchers is not None:
            watchers.discard(callback)
            if not watchers:
                del self.thread_watchers[thread_id]

    async def close(self) -> None:
        return None
