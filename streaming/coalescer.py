"""Coalescing: merge model deltas into fewer, larger delta events.

A buffer is flushed when it holds `buffer_size` deltas, or within `flush_ms` of its first
delta, whichever comes first; with neither set, every delta is flushed at once. With
`first_at_once`, the very first delta goes out alone and at once: the time to first token
is what a reader feels most, and it should not wait out a window. `flush()` flushes
whatever is left (always called before a run's terminal event).

Windows end on the ticks of one clock per event loop (multiples of `flush_ms`), not
`flush_ms` after each buffer's first delta: every run of a worker then flushes at the same
moments, so their events reach the log together, in one round trip per tick, instead of
one round trip per run per window. A delta still waits at most `flush_ms`.
"""

import asyncio
import math
import weakref
from collections.abc import Callable


class Coalescer:
    def __init__(
        self,
        emit: Callable[[str, int], None],
        *,
        buffer_size: int | None = None,
        flush_ms: int | None = None,
        first_at_once: bool = False,
    ) -> None:
        self.emit = emit  # emit(text, number_of_deltas)
        self.buffer_size = buffer_size or 0
        self.flush_seconds = (flush_ms or 0) / 1000
        self.parts: list[str] = []
        self.waiting = False  # a tick of the clock will flush this buffer
        self.first_at_once = first_at_once

    def add(self, text: str) -> None:
        self.parts.append(text)
        if self.first_at_once:
            self.first_at_once = False
            self.flush()
        elif self.buffer_size and len(self.parts) >= self.buffer_size:
            self.flush()
        elif self.flush_seconds:
            if not self.waiting:
                self.waiting = True
                clock().at_next_tick(self.flush_seconds, self._tick)
        elif not self.buffer_size:
            self.flush()

    def _tick(self) -> None:
        self.waiting = False
        self.flush()

    def flush(self) -> None:
        if self.parts:
            parts, self.parts = self.parts, []
            self.emit("".join(parts), len(parts))


class Clock:
    """Ticks shared by the coalescers of one event loop: one timer per tick, whatever the
    number of buffers waiting for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[float, list[Callable[[], None]]] = {}

    def at_next_tick(self, period: float, callback: Callable[[], None]) -> None:
        """Call `callback` at the next multiple of `period` (loop time)."""
        when = (math.floor(self.loop.time() / period) + 1) * period
        callbacks = self.due.get(when)
        if callbacks is None:
            callbacks = self.due[when] = []
            self.loop.call_at(when, self._fire, when)
        callbacks.append(callback)

    def _fire(self, when: float) -> None:
        for callback in self.due.pop(when, ()):
            callback()


_clocks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Clock]" = weakref.WeakKeyDictionary()


def clock() -> Clock:
    """The running event loop's clock."""
    loop = asyncio.get_running_loop()
    found = _clocks.get(loop)
    if found is None:
        found = _clocks[loop] = Clock(loop)
    return found
