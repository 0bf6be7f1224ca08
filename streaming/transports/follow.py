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
from contextlib import aclosing
from dataclasses import dataclass
from typing import Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from .. import drain, errors, runs
from ..events import Event, is_terminal
from ..structured_logs import run_fields
from ..subscribe import Subscription

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """Following ended before the run's terminal event."""

    reason: Literal["expired", "failed", "restart"]
    message: str = ""


RESTART = Ending("restart")


class _Stream:
    """A followed stream as the drain sees it."""

    def __init__(self, subscription: Subscription, *, resumable: bool) -> None:
        self.subscription = subscription
        self.resumable = resumable
        self.restarting = False

    async def restart(self) -> None:
        if self.resumable:
            self.restarting = True
            self.subscription.wake()  # the follower acts on it at once


async def follow(
    run_id: str, after: int = 0, *, resumable: bool = False, quiet: float | None = None,
    stop_on_leave: bool = True, track: bool = True,
) -> AsyncIterator[Event | Ending | None]:
    """The run's events after `after`, up to its terminal event; or an `Ending` last; and,
    with `quiet`, a None after that many seconds without either (see the module's
    docstring). `track=False` leaves the drain to the caller (a WebSocket connection)."""
    idle = settings.STREAM_IDLE_CHECK_SECONDS if quiet is None else min(quiet, settings.STREAM_IDLE_CHECK_SECONDS)
    loop = asyncio.get_running_loop()
    heard = loop.time()
    finished = False
    stream: _Stream | None = None
    try:
        subscription = await runs.run_subscription(run_id, after, idle=idle)
        stream = _Stream(subscription, resumable=resumable)
        if track and drain.track(stream):
            await stream.restart()
        async with aclosing(aiter(subscription)) as items:
            async for item in items:
                if stream.restarting:
                    finished = True  # the client resumes elsewhere: not a disconnect
                    yield RESTART
                    return
                if item is None:
                    if quiet is not None and loop.time() - heard >= quiet:
                        heard = loop.time()
                        yield None
                    continue
                heard = loop.time()
                finished = is_terminal(item)
                yield item
                if finished:
                    return
        finished = True  # also when `after` was at or past the terminal event
    except runs.RunNotFound:
        finished = True
        yield Ending("expired", errors.LOG_EXPIRED)
    except Exception:
        logger.exception("following run %s failed", run_id, extra=run_fields(run_id))
        finished = True
        yield Ending("failed", errors.STREAM_FAILED)
    finally:
        if track and stream is not None:
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
