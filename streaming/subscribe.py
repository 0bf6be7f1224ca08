"""`subscribe(run_id, after_seq)`: a run's backlog, then its live events, until the end.

Every transport, every tab and every resume is this one call. Live delivery may drop or
delay messages; the log may not. So the subscriber starts listening before it reads the
backlog, discards anything at or below the last sequence number it delivered, and reads
the log again whenever it sees a gap or has heard nothing for a while.
"""

from collections.abc import AsyncIterator

from django.conf import settings

from .events import Event, is_terminal
from .logs import EventLog, event_log


class RunNotFound(Exception):
    """The run's log does not exist (never started, or past its retention window)."""


async def subscribe(
    run_id: str, after_seq: int = 0, *, log: EventLog | None = None
) -> AsyncIterator[Event]:
    """Events of `run_id` with `seq > after_seq`, in order, exactly once, ending after the
    terminal event. Raises `RunNotFound` if there is no such log."""
    log = log or event_log()
    idle = settings.STREAM_IDLE_CHECK_SECONDS
    last = after_seq
    async with log.listen(run_id) as inbox:
        pending, from_log = await log.read(run_id, last), True
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
                batch = await inbox.get(wait=idle)
                if batch is not None and batch[0]["seq"] <= last + 1:
                    pending, from_log = batch, False
                    continue
                if batch is None and await _ended(log, run_id, last):
                    return
            pending, from_log = await log.read(run_id, last), True


async def _ended(log: EventLog, run_id: str, last: int) -> bool:
    """Whether the subscriber at `last` has seen the run's terminal event (or there is no
    log at all: `RunNotFound`)."""
    newest = await log.last(run_id)
    if newest is None:
        raise RunNotFound(run_id)
    return is_terminal(newest) and newest["seq"] <= last
