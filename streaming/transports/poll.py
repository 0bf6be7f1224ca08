"""The polling transport: a run's events after a seq, as one JSON answer, optionally held
until there is something new (long polling). Also the seed's `GET /api/message/<id>`."""

import asyncio

from .. import metrics, runs, selectors
from ..events import Event, is_delta, is_terminal
from ..models import Message
from ..wire import Payload, native, seed
from .follow import Ending, follow, release_db


async def events_after(run_id: str, after: int, *, wait: float = 0) -> list[Event] | None:
    """The logged events after `after` (waiting up to `wait` seconds for the first one),
    or None if the run's log has expired."""
    found = await runs.run_events(run_id, after)
    if found or wait <= 0:
        return found if found or await runs.run_exists(run_id) else None
    await release_db()  # hold no connection while waiting
    try:
        async with asyncio.timeout(wait):
            async for item in follow(run_id, after, stop_on_leave=False):
                if isinstance(item, Ending) and item.reason == "expired":
                    return None
                break
    except TimeoutError:
        pass
    return await runs.run_events(run_id, after)


async def poll(run_id: str, after: int, *, wait: float) -> Payload | None:
    """`GET /api/runs/<id>/poll`: the native events after `after`, and whether it ended;
    None if the reply is gone (its conversation was deleted while the poll waited)."""
    delivery = metrics.Delivery("poll")
    found = await events_after(run_id, after, wait=wait)
    status = await selectors.reply_status(run_id=run_id)
    if status is None:
        return None
    delivery.sent_all(found or [])
    if found is None:  # past the retention window
        return native.poll([], complete=True, status=status)
    complete = bool(found) and is_terminal(found[-1])
    if not found:
        complete = status != Message.Status.STREAMING
    return native.poll(found, complete=complete, status=status)


async def message_poll(reply: Message, message_id: str, after: int) -> Payload:
    """`GET /api/message/<message_id>?after=<n>`: the reply's token pieces after the n-th."""
    logged = await runs.run_events(str(reply.pk), 0)
    status: str
    if logged:
        deltas = [e for e in logged if is_delta(e)]
        metrics.Delivery("poll").sent_all(deltas[after:])
        tokens = [e["text"] for e in deltas]
        status = logged[-1]["type"] if is_terminal(logged[-1]) else "streaming"
    else:  # past the retention window: the stored reply
        tokens = [reply.content] if reply.content else []
        status = reply.status
    return seed.message_poll(message_id, tokens=tokens[after:], status=status)
