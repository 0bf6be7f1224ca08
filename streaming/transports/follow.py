"""Following a run: the one loop under every transport.

`follow(run_id, after)` yields the run's events after `after`, ending with its terminal
event. It owns what every transport needs around `runs.run_subscribe`:

- a missing or expired log, or a failure while following, ends it with an `Ending` whose
  message is safe to show (never a traceback);
- the drain (streaming/drain.py): a `resumable` stream ends with `Ending("restart")` when
  the worker drains, so its client resumes elsewhere; any other stream is held, and the
  drain waits for it;
- `quiet`: a `None` after that many seconds without an event, for a keep-alive;
- cancel-on-disconnect: if the consumer stops before the end (the client left), runs that
  asked for it are stopped (`leave`). A transport that decides that itself (the WebSocket,
  whose connection outlives any one run) passes `stop_on_leave=False` and calls `leave`.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from asgiref.sync import sync_to_async
from django.db import connections

from .. import drain, errors, runs
from ..events import Event, is_terminal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """Following ended before the run's terminal event."""

    reason: Literal["expired", "failed", "restart"]
    message: str = ""


RESTART = Ending("restart")


class _Stream:
    """A followed stream as the drain sees it."""

    def __init__(self, queue: "asyncio.Queue[Event | Ending | None]", *, resumable: bool) -> None:
        self.queue = queue
        self.resumable = resumable
        self.restarting = False

    async def restart(self) -> None:
        if self.resumable:
            self.restarting = True
            self.queue.put_nowait(RESTART)  # wakes the follower up


async def follow(
    run_id: str, after: int = 0, *, resumable: bool = False, quiet: float | None = None,
    stop_on_leave: bool = True, track: bool = True,
) -> AsyncIterator[Event | Ending | None]:
    """The run's events after `after`, up to its terminal event; or an `Ending` last; and,
    with `quiet`, a None after that many seconds without either (see the module's
    docstring). `track=False` leaves the drain to the caller (a WebSocket connection)."""
    queue: asyncio.Queue[Event | Ending | None] = asyncio.Queue()  # None: the end

    async def pump() -> None:
        try:
            async for event in runs.run_subscribe(run_id, after):
                queue.put_nowait(event)
            queue.put_nowait(None)  # also when `after` was at or past the terminal event
        except runs.RunNotFound:
            queue.put_nowait(Ending("expired", errors.LOG_EXPIRED))
        except Exception:
            logger.exception("following run %s failed", run_id)
            queue.put_nowait(Ending("failed", errors.STREAM_FAILED))

    task = asyncio.create_task(pump(), name=f"follow-{run_id}")
    stream = _Stream(queue, resumable=resumable)
    if track and drain.track(stream):
        await stream.restart()
    finished = False
    try:
        while True:
            try:
                async with asyncio.timeout(quiet):
                    item = await queue.get()
            except TimeoutError:
                yield None
                continue
            if stream.restarting:
                item = RESTART  # the client resumes elsewhere: not a disconnect
            if item is None:
                finished = True
                return
            finished = isinstance(item, Ending) or is_terminal(item)
            yield item
            if finished:
                return
    finally:
        task.cancel()
        if track:
            drain.untrack(stream)
        if not finished and stop_on_leave:
            await asyncio.shield(leave([run_id]))


async def leave(run_ids: list[str]) -> None:
    """The client following `run_ids` has gone: stop those that asked for it."""
    for run_id in run_ids:
        if await runs.run_cancels_on_disconnect(run_id):
            await runs.run_stop(run_id=run_id)


async def release_db() -> None:
    """Give the request's database connection back before a long stream: following needs
    no database, and every open stream would otherwise hold one."""
    await sync_to_async(connections.close_all)()
