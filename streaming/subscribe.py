"""`subscribe(run_id, after_seq)`: a run's backlog, then its live events, until the end.

Every transport, every tab and every resume is this one call. Live delivery may drop or
delay messages; the log may not. So the subscriber starts listening before it reads the
backlog, discards anything at or below the last sequence number it delivered, and reads
the log again whenever it sees a gap or has heard nothing for a while.

`Subscription` is the same, for a follower that also needs to act while nothing happens
(a keep-alive, a restart): it yields None after each quiet spell and whenever `wake()` is
called, so the follower needs no task of its own.
"""

from collections.abc import AsyncGenerator, AsyncIterator

from django.conf import settings

from .events import Event, is_terminal
from .logs import EventLog, Inbox, event_log

# The backlog is read a page at a time: a follower holds at most this many events of it,
# however long the run, and reads the next page once it has passed these on.
READ_PAGE = 500


class RunNotFound(Exception):
    """The run's log does not exist (never started, or past its retention window)."""


class Subscription:
    """Events of `run_id` with `seq > after_seq`, in order, exactly once, ending after the
    terminal event; and None whenever `idle` seconds pass without one, or after `wake()`.
    Iterating raises `RunNotFound` if there is no such log."""

    def __init__(
        self, run_id: str, after_seq: int = 0, *, log: EventLog | None = None,
        idle: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.after_seq = after_seq
        self.log = log or event_log()
        self.idle = settings.STREAM_IDLE_CHECK_SECONDS if idle is None else idle
        self.inbox: Inbox | None = None
        self.woken = False

    def wake(self) -> None:
        """Make a waiting iteration yield None now."""
        self.woken = True
        if self.inbox is not None:
            self.inbox.wake()

    async def __aiter__(self) -> AsyncGenerator[Event | None, None]:
        log, run_id, last = self.log, self.run_id, self.after_seq
        async with log.listen(run_id) as inbox:
            self.inbox = inbox
            if self.woken:
                inbox.wake()
            pending, from_log = await log.read(run_id, last, limit=READ_PAGE), True
            if not pending and await _ended(log, run_id, last):
                return
            while True:
                for event in pending:
                    seq = event["seq"]
                    if seq <= last:
                        continue  # a duplicate
                    if seq > last + 1 and not from_log:
                        break  # a gap in live delivery: read the log below
                    last = seq
                    yield event
                    if is_terminal(event):
                        return
                else:
                    if from_log and len(pending) == READ_PAGE:  # more backlog: the next page
                        pending = await log.read(run_id, last, limit=READ_PAGE)
                        continue
                    batch = await inbox.get(wait=self.idle)
                    if batch is not None and batch[0]["seq"] <= last + 1:
                        pending, from_log = batch, False
                        continue
                    if batch is None:
                        yield None  # quiet, or woken: the follower may act
                        if await _ended(log, run_id, last):
                            return
                pending, from_log = await log.read(run_id, last, limit=READ_PAGE), True


async def subscribe(
    run_id: str, after_seq: int = 0, *, log: EventLog | None = None
) -> AsyncIterator[Event]:
    """A `Subscription`'s events only."""
    async for event in Subscription(run_id, after_seq, log=log):
        if event is not None:
            yield event


async def _ended(log: EventLog, run_id: str, last: int) -> bool:
    """Whether the subscriber at `last` has seen the run's terminal event (or there is no
    log at all: `RunNotFound`)."""
    newest = await log.last(run_id)
    if newest is None:
        raise RunNotFound(run_id)
    return is_terminal(newest) and newest["seq"] <= last
