"""Coalescing: merge model deltas into fewer, larger delta events.

A buffer is flushed when it holds `buffer_size` deltas, or `flush_ms` after its first delta
arrived, whichever comes first; with neither set, every delta is flushed at once. With
`first_at_once`, the very first delta goes out alone and at once: the time to first token
is what a reader feels most, and it should not wait out a window. `flush()` flushes
whatever is left (always called before a run's terminal event).
"""

import asyncio
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
        self.timer: asyncio.TimerHandle | None = None
        self.first_at_once = first_at_once

    def add(self, text: str) -> None:
        self.parts.append(text)
        if self.first_at_once:
            self.first_at_once = False
            self.flush()
        elif self.buffer_size and len(self.parts) >= self.buffer_size:
            self.flush()
        elif self.flush_seconds:
            if self.timer is None:
                self.timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)
        elif not self.buffer_size:
            self.flush()

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.parts:
            parts, self.parts = self.parts, []
            self.emit("".join(parts), len(parts))
