"""The ChatKit transport: `openai-chatkit`'s `ChatKitServer` over this project's runs.

A reply started from ChatKit is an ordinary run (persisted, in the admin, stoppable from
anywhere), followed like any other (`follow`) and sent as ChatKit's thread events
(`wire.chatkit`). A ChatKit client that cancels its stream stops the run, and the partial
reply is kept. ChatKit cannot resume a stream, so a draining worker waits for it.
"""

import asyncio
import logging
from collections.abc import AsyncIterator

from chatkit.server import ChatKitServer
from chatkit.types import (
    AssistantMessageItem,
    ErrorEvent,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from django.utils import timezone

from .. import metrics, runs, selectors, services
from ..chatkit_store import ChatKitContext, ModelStore, item_text
from ..inputs import message_problem
from ..structured_logs import run_fields
from ..wire.chatkit import ChatKitReply
from .follow import Ending, follow, release_db

logger = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 10.0  # how long a cancelled stream waits for its run to record the stop


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
            metrics.refused("bad_request")
            yield ErrorEvent(code="custom", message=problem, allow_retry=False)
            return
        sent = await selectors.message_get(message_id=input_user_message.id)
        row = await selectors.thread_owned(user=context.user, thread_id=thread.id)
        try:
            handle = await runs.run_start(user=context.user, thread=row, text=text, user_message=sent)
        except runs.RunRefused as exc:
            yield ErrorEvent(code="custom", message=str(exc), allow_retry=True)
            return
        if not thread.title:
            thread.title = services.title_from_text(text)  # ChatKitServer saves and announces it

        reply = ChatKitReply(
            AssistantMessageItem(
                id=handle.run_id, thread_id=thread.id, created_at=timezone.now(), content=[]
            )
        )
        for opening in reply.opening():
            yield opening
        # ChatKitServer has saved the new title by now.
        await release_db()
        delivery = metrics.Delivery("chatkit")
        async for item in follow(handle.run_id, stop_on_leave=False):
            if isinstance(item, Ending):
                yield ErrorEvent(code="custom", message=item.message, allow_retry=True)
                return
            if item is not None:
                delivery.sent(item)
                for out in reply.events(item):
                    yield out

    async def handle_stream_cancelled(
        self, thread: ThreadMetadata, pending_items: list[ThreadItem], context: ChatKitContext
    ) -> None:
        """The client cancelled the stream (ChatKit's Stop, or it went away): stop the run
        and wait for it to record its partial reply as `stopped`."""
        for item in pending_items:
            if isinstance(item, AssistantMessageItem):
                await _stop_and_wait(item.id)


async def _stop_and_wait(run_id: str) -> None:
    await runs.run_stop(run_id=run_id)
    try:
        async with asyncio.timeout(STOP_WAIT_SECONDS):
            async for _ in runs.run_subscribe(run_id, 0):
                pass
    except (TimeoutError, runs.RunNotFound):
        logger.warning("run %s did not confirm its stop in time", run_id, extra=run_fields(run_id))


chat_server = ChatServer()
