"""The run API every transport uses: start a run, find one the requester may see, follow
it with `run_subscribe(run_id, after_seq)`, and stop it from any worker."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from . import agent_runtime, selectors, services
from .events import Event
from .logs import event_log
from .manager import run_manager
from .models import Message, Thread, User
from .producer import RunOptions
from .subscribe import RunNotFound, subscribe

__all__ = [
    "RunHandle", "RunNotFound", "RunOptions", "RunRefused", "client_key", "run_exists", "run_for_user",
    "run_start", "run_start_once", "run_stop", "run_subscribe",
]

logger = logging.getLogger(__name__)


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
) -> RunHandle:
    """Save the user's message and a `streaming` reply (in a new thread if `thread` is
    None), and start generating it. `user_message` is the user's message when a caller has
    saved it already (ChatKit's store does); `text` is then its text.

    Raises `RunRefused` when the user is over a limit: concurrent runs
    (`CHAT_MAX_CONCURRENT_RUNS`) or messages per minute (`CHAT_MESSAGES_PER_MINUTE`).
    """
    refusal = await sync_to_async(services.run_limit_reached)(
        user=user, sent=user_message.pk if user_message else None
    )
    if refusal:
        raise RunRefused(refusal)
    user_message, reply = await sync_to_async(services.reply_start)(
        thread=thread, owner=user, text=text, model_name=agent_runtime.model_name(),
        client_id=client_id, user_message=user_message,
    )
    thread = reply.thread
    run_id = str(reply.pk)
    try:
        history = await selectors.thread_history(thread=thread)
        await run_manager().start(
            run_id=run_id,
            thread_id=str(thread.pk),
            owner_id=user.pk,
            input=agent_runtime.history_input(history),
            options=options or RunOptions(),
        )
    except Exception:
        logger.exception("could not start run %s", run_id)
        await sync_to_async(services.reply_finish)(
            message_id=run_id, content="", status=Message.Status.FAILED,
            metrics=services.ReplyMetrics(ttft_seconds=None, token_count=0, duration_seconds=0.0),
            error="The reply could not be started.",
        )
        raise
    await _announce(run_id, str(thread.pk), text)
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
) -> tuple[RunHandle, bool]:
    """`run_start`, unless `client_id` (the client's id for this message, the same on every
    retry of it) already has a reply: then that reply's handle. Returns (handle, started)."""
    if client_id is None:
        return await run_start(user=user, thread=thread, text=text, options=options), True
    key = client_key(user, client_id)
    existing = await _handle_for(key)
    if existing is not None:
        return existing, False
    try:
        return await run_start(user=user, thread=thread, text=text, options=options, client_id=key), True
    except IntegrityError:  # a concurrent retry with the same id won the race
        existing = await _handle_for(key)
        assert existing is not None
        return existing, False


async def _handle_for(key: str) -> RunHandle | None:
    reply = await Message.objects.filter(client_id=key).afirst()
    if reply is None:
        return None
    asked = await (
        Message.objects.filter(
            thread_id=reply.thread_id, role=Message.Role.USER, created_at__lte=reply.created_at
        )
        .order_by("-created_at")
        .values_list("pk", flat=True)
        .afirst()
    )
    return RunHandle(run_id=str(reply.pk), thread_id=str(reply.thread_id), user_message_id=str(asked or ""))


async def _announce(run_id: str, thread_id: str, text: str) -> None:
    """Tell connections watching the thread (other tabs, other devices) about the run and
    the message that started it."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(
            f"thread.{thread_id}",
            {"type": "thread.run", "run_id": run_id, "thread_id": thread_id, "message": text},
        )
    except Exception:
        logger.warning("could not announce run %s to thread %s", run_id, thread_id, exc_info=True)


async def run_for_user(*, user: User, run_id: object) -> Message | None:
    """The run's reply message if `user` owns its thread (or is staff), else None."""
    if not user.is_authenticated:
        return None
    replies = Message.objects.select_related("thread").filter(role=Message.Role.ASSISTANT)
    if not user.is_staff:
        replies = replies.filter(thread__owner=user)
    try:
        return await replies.aget(pk=run_id)
    except (Message.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


async def run_exists(run_id: str) -> bool:
    """Whether the run's event log is held (live, or ended within the retention window)."""
    await run_manager().ensure_started()
    return await event_log().exists(run_id)


async def run_subscribe(run_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
    """The run's events after `after_seq`: backlog, then live, until the terminal event."""
    await run_manager().ensure_started()
    async for event in subscribe(run_id, after_seq):
        yield event


async def run_stop(*, run_id: str) -> None:
    """Stop the run wherever it is generating; it ends `stopped` with its partial text."""
    await run_manager().stop(run_id)


async def run_cancels_on_disconnect(run_id: str) -> bool:
    meta = await event_log().meta(run_id)
    return bool(meta and meta.get("cancel_on_disconnect"))


async def run_events_after(run_id: str, after_seq: int, *, wait: float = 0) -> list[Event] | None:
    """The logged events after `after_seq` (waiting up to `wait` seconds for the first one),
    or None if the run's log has expired."""
    log = event_log()
    found = await log.read(run_id, after_seq)
    if found or wait <= 0:
        return found if found or await log.exists(run_id) else None
    try:
        async with asyncio.timeout(wait):
            async for _ in run_subscribe(run_id, after_seq):
                break
    except TimeoutError:
        pass
    except RunNotFound:
        return None
    return await log.read(run_id, after_seq)
