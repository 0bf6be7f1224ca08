"""A self-hosted ChatKit backend: `openai-chatkit`'s `ChatKitServer` over this project's
runs. A reply started from ChatKit is an ordinary run (persisted, in the admin, stoppable
from anywhere, followed through the run's event log); this module turns its events into
ChatKit's thread events. A ChatKit client that cancels its stream stops the run, and the
partial reply is kept.
"""

import asyncio
import logging
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from chatkit.server import ChatKitServer
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from django.db import connections
from django.utils import timezone

from . import drain, runs, services
from .chatkit_store import ChatKitContext, ModelStore, item_text
from .events import Event
from .http import text_problem
from .models import Message, Thread

logger = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 10.0  # how long a cancelled stream waits for its run to record the stop


def _done(item: AssistantMessageItem, text: str) -> list[ThreadStreamEvent]:
    content = AssistantMessageContent(text=text)
    return [
        ThreadItemUpdatedEvent(
            item_id=item.id, update=AssistantMessageContentPartDone(content_index=0, content=content)
        ),
        ThreadItemDoneEvent(item=item.model_copy(update={"content": [content]})),
    ]


class ChatServer(ChatKitServer[ChatKitContext]):
    """ChatKit's protocol on this project's threads, messages and runs."""

    def __init__(self) -> None:
        super().__init__(store=ModelStore())

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: ChatKitContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        if input_user_message is None:  # client tool output: this agent calls no client tools
            return
        text = item_text(input_user_message)
        problem = message_problem(text)
        if problem:
            yield ErrorEvent(code="custom", message=problem, allow_retry=False)
            return
        sent = await Message.objects.aget(pk=input_user_message.id)
        row = await Thread.objects.aget(pk=thread.id, owner=context.user)
        try:
            handle = await runs.run_start(user=context.user, thread=row, text=text, user_message=sent)
        except runs.RunRefused as exc:
            yield ErrorEvent(code="custom", message=str(exc), allow_retry=True)
            return
        if not thread.title:
            thread.title = services.title_from_text(text)  # ChatKitServer saves and announces it

        item = AssistantMessageItem(
            id=handle.run_id, thread_id=thread.id, created_at=timezone.now(), content=[]
        )
        yield ThreadItemAddedEvent(item=item)
        yield ThreadItemUpdatedEvent(
            item_id=item.id,
            update=AssistantMessageContentPartAdded(
                content_index=0, content=AssistantMessageContent(text="")
            ),
        )
        # ChatKitServer has saved the new title by now. Following the run needs no
        # database: give the request's connection back to the pool for the length of the
        # reply, or every open stream would hold one.
        await sync_to_async(connections.close_all)()
        parts: list[str] = []
        with drain.held():  # ChatKit cannot resume a stream
            async for event in runs.run_subscribe(handle.run_id, 0):
                for out in _chatkit_events(item, event, parts):
                    yield out

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatKitContext
    ) -> None:
        """The client cancelled the stream (ChatKit's Stop, or it went away): stop the run
        and wait for it to record its partial reply as `stopped`."""
        for item in pending_items:
            if isinstance(item, AssistantMessageItem):
                await _stop_and_wait(item.id)


def _chatkit_events(item: AssistantMessageItem, event: Event, parts: list[str]) -> list[ThreadStreamEvent]:
    """ChatKit's events for one of the run's events (`parts`: the text so far)."""
    kind = event["type"]
    if kind == "delta":
        parts.append(event["text"])
        return [
            ThreadItemUpdatedEvent(
                item_id=item.id,
                update=AssistantMessageContentPartTextDelta(content_index=0, delta=event["text"]),
            )
        ]
    if kind in ("completed", "stopped"):
        return _done(item, "".join(parts))
    if kind in ("failed", "interrupted"):
        done = _done(item, "".join(parts)) if parts else []
        return [*done, ErrorEvent(code="custom", message=event.get("error") or kind, allow_retry=True)]
    return []


def message_problem(text: str) -> str:
    """Why ChatKit's message cannot be sent ("" if it can): the rules of every message."""
    if not text.strip():
        return "The message is empty."
    problem = text_problem(text)
    return f"The message {problem}." if problem else ""


async def _stop_and_wait(run_id: str) -> None:
    await runs.run_stop(run_id=run_id)
    try:
        async with asyncio.timeout(STOP_WAIT_SECONDS):
            async for _ in runs.run_subscribe(run_id, 0):
                pass
    except (TimeoutError, runs.RunNotFound):
        logger.warning("run %s did not confirm its stop in time", run_id)


chat_server = ChatServer()
