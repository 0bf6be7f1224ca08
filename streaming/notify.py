"""Thread notifications over the channel layer: when a run starts in a thread, every
connection watching that thread (other tabs, other devices) hears of it.

The contract is defined here once: the group of a thread, and the message sent to it,
whose `type` names the consumer method that handles it (`thread.run` -> `thread_run`).
"""

import logging
from typing import Literal, TypedDict

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


class RunAnnounced(TypedDict):
    type: Literal["thread.run"]
    run_id: str
    thread_id: str
    message: str  # the user's message that started the run


def thread_group(thread_id: str) -> str:
    return f"thread.{thread_id}"


async def announce_run(*, run_id: str, thread_id: str, text: str) -> None:
    """Tell connections watching the thread about the run and the message that started it
    (best effort: the channel layer is at-most-once, and a miss only delays the other tab
    until it reloads)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message: RunAnnounced = {
        "type": "thread.run", "run_id": run_id, "thread_id": thread_id, "message": text,
    }
    try:
        await layer.group_send(thread_group(thread_id), dict(message))
    except Exception:
        logger.warning("could not announce run %s to thread %s", run_id, thread_id, exc_info=True)
