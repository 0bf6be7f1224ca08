"""The run API every transport uses: start a run, find one the requester may see, follow
it with `run_subscribe(run_id, after_seq)`, and stop it from any worker."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import IntegrityError

from . import agent_runtime, metrics, notify, selectors, services
from .events import Event
from .logs import event_log, run_registry
from .manager import run_manager
from .models import Message, Thread, User
from .producer import RunOptions
from .structured_logs import run_fields
from .subscribe import RunNotFound, Subscription, subscribe

__all__ = [
    "NotAllowed", "RunHandle", "RunNotFound", "RunOptions", "RunRefused", "client_key", "run_exists", "run_for_user",
    "run_events", "run_start", "run_start_once", "run_stop", "run_subscribe", "run_subscription",
    "thread_delete",
]

logger = logging.getLogger(__name__)


NotAllowed = services.NotAllowed


class RunRefused(Exception):
    """The user may not start a run now (a per-user limit); the message says why."""

    def __init__(self, message: str, *, code: str = "rate_limited") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunHandle:
    run_id: str  # also the assistant message's id
    thread_id: str
    user_message_id: str


async def run_start(
    *,
    user: User,
    thread: Thread | None,
    text: str,
    options: RunOptions | None = None,
    client_id: str | None = None,
    user_message: Message | None = None,
    edit_of: Message | None = None,
    regenerate: Message | None = None,
) -> RunHandle:
    """Save the user's message and a `streaming` reply (in a new thread if `thread` is
    None), and start generating it. `user_message` is the user's message when a caller has
    saved it already (ChatKit's store does); `text` is then its text. With `edit_of` the
    message is a new version of that one; with `regenerate` (a finished reply) no message
    is saved and the reply is a new version of that one (`services.run_admit`; raises
    `NotAllowed` if they are not the thread's).

    Raises `RunRefused` when the user is over a limit: concurrent runs
    (`CHAT_MAX_CONCURRENT_RUNS`) or runs started per minute (`CHAT_MESSAGES_PER_MINUTE`);
    starts racing on any worker are admitted one at a time (`services.run_admit`).
    """
    given_thread, given_message = thread, user_message
    try:
        admitted = await sync_to_async(services.run_admit)(
            thread=thread, owner=user, text=text, model_name=agent_runtime.model_name(),
            client_id=client_id, user_message=user_message, edit_of=edit_of, regenerate=regenerate,
        )
    except services.LimitReached as exc:
        metrics.refused("rate_limited")
        raise RunRefused(str(exc)) from None
    user_message, reply = admitted.user_message, admitted.reply
    thread = reply.thread
    run_id = str(reply.pk)
    try:
        await run_manager().start(
            run_id=run_id,
            thread_id=str(thread.pk),
            owner_id=user.pk,
            input=agent_runtime.history_input(admitted.history),
            options=options or RunOptions(),
        )
    except Exception as exc:
        logger.warning(
            "could not start run %s; discarded", run_id, exc_info=exc, extra=run_fields(run_id, str(thread.pk))
        )
        # Nothing of it reached anyone: undone, so that the client's retry (same client_id)
        # starts afresh rather than finding a reply that never began.
        await sync_to_async(services.run_discard)(
            admitted=admitted,
            keep_message=given_message is not None or regenerate is not None,
            keep_thread=given_thread is not None,
        )
        raise
    branched = edit_of is not None or regenerate is not None
    await notify.announce_run(
        run_id=run_id, thread_id=str(thread.pk), text="" if regenerate else text, branch=branched
    )
    await notify.announce_thread(
        user_id=user.pk, thread_id=str(thread.pk), title=thread.title or services.title_from_text(text)
    )
    return RunHandle(run_id=run_id, thread_id=str(thread.pk), user_message_id=str(user_message.pk))


def client_key(user: User, client_id: str) -> str:
    """A client's id for a message, scoped to its user (stored as the reply's `client_id`)."""
    return f"{user.pk}:{client_id}"


async def run_start_once(
    *,
    user: User,
    thread: Thread | None,
    text: str,
    client_id: str | None,
    options: RunOptions | None = None,
    edit_of: Message | None = None,
    regenerate: Message | None = None,
) -> tuple[RunHandle, bool]:
    """`run_start`, unless `client_id` (the client's id for this message, the same on every
    retry of it) already has a reply: then that reply's handle. Returns (handle, started)."""
    if client_id is None:
        started = await run_start(
            user=user, thread=thread, text=text, options=options, edit_of=edit_of, regenerate=regenerate
        )
        return started, True
    key = client_key(user, client_id)
    existing = await _handle_for(key)
    if existing is not None:
        return existing, False
    try:
        started = await run_start(
            user=user, thread=thread, text=text, options=options, client_id=key,
            edit_of=edit_of, regenerate=regenerate,
        )
        return started, True
    except IntegrityError:  # a concurrent retry with the same id won the race
        existing = await _handle_for(key)
        assert existing is not None
        return existing, False


async def _handle_for(key: str) -> RunHandle | None:
    reply = await selectors.reply_by_client_key(key=key)
    if reply is None:
        return None
    asked = await selectors.question_of(reply=reply)
    return RunHandle(run_id=str(reply.pk), thread_id=str(reply.thread_id), user_message_id=asked)


async def run_for_user(*, user: User, run_id: object) -> Message | None:
    """The run's reply message if `user` may see it, else None (callers answer 404)."""
    return await selectors.reply_for_user(user=user, run_id=run_id)


async def run_exists(run_id: str) -> bool:
    """Whether the run's event log is held (live, or ended within the retention window)."""
    await run_manager().ensure_started()
    return await event_log().exists(run_id)


async def run_subscribe(run_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
    """The run's events after `after_seq`: backlog, then live, until the terminal event."""
    await run_manager().ensure_started()
    async for event in subscribe(run_id, after_seq):
        yield event


async def run_subscription(run_id: str, after_seq: int = 0, *, idle: float | None = None) -> Subscription:
    """`run_subscribe` for a follower that also acts while nothing happens (Subscription)."""
    await run_manager().ensure_started()
    return Subscription(run_id, after_seq, idle=idle)


async def run_stop(*, run_id: str) -> None:
    """Stop the run wherever it is generating; it ends `stopped` with its partial text."""
    await run_manager().stop(run_id)


async def run_cancels_on_disconnect(run_id: str) -> bool:
    meta = await run_registry().meta(run_id)
    return bool(meta and meta.get("cancel_on_disconnect"))


async def thread_delete(*, thread: Thread) -> None:
    """Delete a conversation. Its live runs are stopped first, at the model: none goes on
    generating (and costing) unseen and unstoppable once its records are gone."""
    for run_id in await selectors.thread_live_runs(thread=thread):
        await run_stop(run_id=run_id)
    await sync_to_async(services.thread_delete)(thread=thread)


async def run_events(run_id: str, after_seq: int = 0) -> list[Event]:
    """The logged events after `after_seq` (none if the log has expired)."""
    return await event_log().read(run_id, after_seq)
