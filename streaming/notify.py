"""Thread notices: when a run starts in a thread, every connection watching that thread
(other tabs, other devices, on any worker) hears of it, and follows the run; and every
connection of the thread's owner hears that the conversation had a message (`ThreadActive`,
on the owner's own topic), so that its sidebar lists the conversation first, new or not.

The contract is defined here once: the notice (`RunAnnounced`), how it is sent
(`announce_run`) and how a connection watches a thread (`watch` / `unwatch`). Notices
travel on the run registry's pub/sub (streaming/logs/): at most once, which is enough for
a notice: the run itself is in the log, and a tab that missed one finds the run when it
next loads the thread.
"""

import logging
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from .logs import run_registry

logger = logging.getLogger(__name__)


class RunAnnounced(TypedDict):
    type: Literal["run"]
    run_id: str
    thread_id: str
    message: str  # the user's message that started the run ("" for a regenerated reply)
    branch: bool  # a new version of a message or reply: the conversation shown changes


class ThreadActive(TypedDict):
    type: Literal["thread"]
    thread_id: str
    title: str


Watcher = Callable[[dict[str, Any]], None]


def user_topic(user_id: object) -> str:
    """What a connection watches (`watch`) to hear of its user's conversations."""
    return f"user-{user_id}"  # never a thread's id (a UUID)


async def announce_run(*, run_id: str, thread_id: str, text: str, branch: bool = False) -> None:
    """Tell the thread's watchers about the run and the message that started it."""
    notice: RunAnnounced = {
        "type": "run", "run_id": run_id, "thread_id": thread_id, "message": text, "branch": branch,
    }
    try:
        await run_registry().announce(thread_id, dict(notice))
    except Exception:
        logger.warning("could not announce run %s to thread %s", run_id, thread_id, exc_info=True)


async def announce_thread(*, user_id: object, thread_id: str, title: str) -> None:
    """Tell the user's connections that the conversation just had a message."""
    notice: ThreadActive = {"type": "thread", "thread_id": thread_id, "title": title}
    try:
        await run_registry().announce(user_topic(user_id), dict(notice))
    except Exception:
        logger.warning("could not announce thread %s to its owner", thread_id, exc_info=True)


async def watch(thread_id: str, watcher: Watcher) -> None:
    """Call `watcher(notice)` on this process's event loop for each notice about the thread."""
    await run_registry().watch_thread(thread_id, watcher)


async def unwatch(thread_id: str, watcher: Watcher) -> None:
    await run_registry().unwatch_thread(thread_id, watcher)
