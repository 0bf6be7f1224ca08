"""The WebSocket transport: the runs one connection follows, sent in its wire shape.

Each followed run is one task over `follow(run_id, after)`. The connection remembers the
last seq it sent of each run, so `resume` (or a new connection's `subscribe`) continues
exactly where delivery stopped. The consumer (streaming/consumers.py) parses commands and
decides what to follow; this module only follows and sends.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .. import metrics
from ..events import is_terminal
from ..structured_logs import run_fields
from ..wire import Stream, encode_text, shape_for
from . import backlog
from .follow import Ending, follow, leave

logger = logging.getLogger(__name__)

DEFAULT_WIRE = "message"  # the seed's WebSocket shape; the page asks for `native`


class Followers:
    """The runs a connection follows, in the wire shape `wire`."""

    __slots__ = ("closed", "current", "done", "paused", "send", "sent", "tasks", "wire")

    def __init__(self, send: Callable[[str], Awaitable[None]], *, wire: str = DEFAULT_WIRE) -> None:
        self.send = send
        self.wire = wire
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.sent: dict[str, int] = {}  # run id -> last seq sent on this connection
        self.done: set[str] = set()  # runs whose terminal event was sent
        self.paused = False
        self.closed = False
        self.current: str | None = None  # the run a bare `stop` means

    async def control(self, type: str, **fields: Any) -> None:
        """A message about the connection itself (not a run's event): the same on every wire."""
        await self.send(encode_text({"type": type, **fields}))

    async def error(self, message: str, **fields: Any) -> None:
        await self.control("error", error=message, **fields)

    def knows(self, run_id: str) -> bool:
        return run_id in self.sent

    def follow(self, run_id: str, after: int) -> None:
        self.current = run_id
        self.sent.setdefault(run_id, after)
        if self.paused or self.closed or run_id in self.tasks:
            return
        start = max(after, self.sent[run_id])
        self.tasks[run_id] = asyncio.create_task(self._pump(run_id, start), name=f"ws-{run_id}")

    def pause(self) -> dict[str, int]:
        """Stop sending (the runs go on); returns the last seq sent of each run."""
        self.paused = True
        self._cancel()
        return dict(self.sent)

    def resume(self) -> None:
        self.paused = False
        for run_id, last in self.sent.items():
            if run_id not in self.done:
                self.follow(run_id, last)

    def close(self) -> None:
        """The connection is closing: stop sending."""
        self.closed = True
        self._cancel()

    async def leave(self) -> None:
        """The client has gone: stop the unfinished runs that asked for it (paused ones too)."""
        await leave([run_id for run_id in self.sent if run_id not in self.done])

    def _cancel(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def _pump(self, run_id: str, after: int) -> None:
        shape = shape_for(self.wire, Stream(run_id=run_id))
        delivery = metrics.Delivery("websocket")
        try:
            async for item in follow(run_id, after, stop_on_leave=False, track=False):
                if isinstance(item, Ending):
                    await self.error(item.message, run_id=run_id)
                    return
                if item is None:
                    continue
                payload = shape.event(item)
                if payload is not None:
                    if backlog.too_far_behind():  # the client resumes with `subscribe`
                        backlog.cut()
                        return
                    await self.send(encode_text(payload))
                    delivery.sent(item)
                self.sent[run_id] = item["seq"]
                if is_terminal(item):
                    self.done.add(run_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection went away while sending
            logger.warning(
                "WebSocket: could not send run %s", run_id, exc_info=True, extra=run_fields(run_id)
            )
        finally:
            if self.tasks.get(run_id) is asyncio.current_task():
                del self.tasks[run_id]
