"""What an event-log backend provides, as two interfaces:

- `EventLog`: an append-only, replayable log per run, and live delivery of new events to
  listeners in this process (what `subscribe` and the producer use);
- `RunRegistry`: the live runs and the cluster's chores (who runs what, stop requests,
  worker heartbeats, orphans), what the run manager uses; and notices to
  the connections watching a thread (`streaming/notify.py`).

A backend class implements both (they share a store) and is chosen by the dotted path in
`STREAM_LOG_BACKEND`; it is built with `Backend.from_settings()`.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ..events import Event

logger = logging.getLogger(__name__)

class LogUnavailable(Exception):
    """The event log's store cannot be reached right now (worth retrying)."""


class RunEnded(Exception):
    """The run's end is decided elsewhere (it was sealed, or has ended): the log refused
    the append, and the producer should stop."""


INBOX_LIMIT = 1000  # batches a slow listener may fall behind before it backfills from the log


class Inbox:
    """Batches of new events for one listener. Overflow is dropped: the listener sees a
    gap in sequence numbers and backfills from the log, so nothing is lost. `wake()` makes
    a waiting `get` return None at once (its listener has something else to do)."""

    __slots__ = ("batches", "local", "loop", "waiter", "woken")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.local = False  # fed by this process's own appends, not by a channel
        self.batches: deque[list[Event]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.woken = False

    def deliver(self, batch: list[Event]) -> None:
        """Called from any thread or loop."""
        if asyncio._get_running_loop() is self.loop:
            self._put(batch)
        else:
            self.loop.call_soon_threadsafe(self._put, batch)

    def _put(self, batch: list[Event]) -> None:
        if len(self.batches) < INBOX_LIMIT:
            self.batches.append(batch)
            self._release()

    def wake(self) -> None:
        self.woken = True
        self._release()

    def _release(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, wait: float) -> list[Event] | None:
        """The next batch; or None after `wait` seconds without one, or once woken."""
        if not self.batches and not self.woken:
            self.waiter = waiter = self.loop.create_future()
            timer = self.loop.call_later(wait, self._release)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        if self.batches:
            return self.batches.popleft()
        self.woken = False
        return None


class EventLog(Protocol):
    def append(
        self, run_id: str, events: list[Event], *, final: bool = False, sealed_by: str = ""
    ) -> "asyncio.Future[None]":
        """Append events (already numbered) and deliver them to live listeners everywhere.
        A run's appends are logged in the order they are made, whether or not anyone waits:
        the future resolves once these events are logged (or fails with `LogUnavailable`).

        A `final` append ends the run's log: nothing appended after it is logged. Once a
        run is sealed (`seal`), only its sealer's final append (`sealed_by`) is."""

    async def seal(self, run_id: str, who: str, ttl: float) -> bool:
        """Decide who ends the run: True if `who` (a producer, or a worker reaping the run)
        holds the seal, now or already. From then on the log takes nothing but `who`'s
        terminal event, so whoever reads it after sealing reads the run's final text. A
        seal that is not followed by a terminal event lapses after `ttl` seconds."""

    async def read(self, run_id: str, after_seq: int, *, limit: int | None = None) -> list[Event]:
        """The logged events with `seq > after_seq`, in order; the first `limit` of them."""

    async def last(self, run_id: str) -> Event | None:
        """The run's newest logged event, or None if there is no log."""

    async def exists(self, run_id: str) -> bool:
        """Whether the run's log is still held (live, or within its retention window)."""

    def listen(self, run_id: str) -> contextlib.AbstractAsyncContextManager[Inbox]:
        """Receive the run's new events in this process while the context is open."""


class RunRegistry(Protocol):
    async def register(self, run_id: str, meta: dict[str, Any]) -> None:
        """Record a live run (its owner, worker, options)."""

    async def unregister(self, run_id: str) -> None:
        """Forget a run that has ended."""

    async def meta(self, run_id: str) -> dict[str, Any] | None:
        """A live run's registry entry, or None."""

    async def request_stop(self, run_id: str) -> None:
        """Ask the run's worker, wherever it is, to stop it."""

    async def stops_requested(self, run_ids: list[str]) -> set[str]:
        """Which of `run_ids` have a stop requested (one round trip)."""

    async def watch_stops(self, callback: Callable[[str], None]) -> None:
        """Call `callback(run_id)` in this process whenever a stop is requested anywhere."""

    async def heartbeat(self, worker_id: str, ttl: float) -> None:
        """Say that `worker_id` is alive for the next `ttl` seconds."""

    async def orphaned_runs(self, worker_id: str) -> list[str]:
        """Live runs that may have lost their producer: those of workers that have stopped
        sending heartbeats, and those registered to `worker_id` (the caller's own: it
        knows which of them it still produces)."""

    async def announce(self, thread_id: str, message: dict[str, Any]) -> None:
        """Tell the watchers of a thread, in every process, about `message` (at most once:
        a notice, not part of any reply)."""

    async def watch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback(message)` in this process for each notice about the thread."""

    async def unwatch_thread(self, thread_id: str, callback: Callable[[dict[str, Any]], None]) -> None:
        """Stop calling `callback` for the thread."""


class Backend(EventLog, RunRegistry, Protocol):
    """What `STREAM_LOG_BACKEND` names: both interfaces over one store."""

    # One instance per process (True), or per event loop (False: connections that belong
    # to a loop, as Redis's do).
    per_process: bool

    @classmethod
    def from_settings(cls) -> "Backend":
        """A backend configured from Django's settings."""
        ...

    async def close(self) -> None: ...


@contextlib.asynccontextmanager
async def listening(listeners: dict[str, set[Inbox]], run_id: str) -> AsyncIterator[Inbox]:
    """Register an inbox in `listeners[run_id]` for the duration of the context."""
    inbox = Inbox()
    listeners.setdefault(run_id, set()).add(inbox)
    try:
        yield inbox
    finally:
        members = listeners.get(run_id)
        if members is not None:
            members.discard(inbox)
            if not members:
                del listeners[run_id]
