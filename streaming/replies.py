"""One assistant reply: persist the turn, stream the agent's text, record the outcome."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from . import agent_runtime, selectors, services
from .models import Message, Thread

logger = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0


@dataclass
class ReplyProgress:
    """What a reply has produced so far, and how fast."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0
    parts: list[str] = field(default_factory=list)

    def add(self, delta: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.tokens += 1
        self.parts.append(delta)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def metrics(self) -> services.ReplyMetrics:
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        return services.ReplyMetrics(
            ttft_seconds=ttft,
            token_count=self.tokens,
            duration_seconds=time.monotonic() - self.started,
        )


async def reply_stream(*, thread: Thread, text: str) -> AsyncIterator[dict[str, Any]]:
    """Stream a reply to `text` in `thread` as events: `token`*, then `done` or `error`.

    If the consumer goes away (the iterator is closed or cancelled), the model run is
    cancelled and the partial reply is kept with status `stopped`.
    """
    _, assistant = await sync_to_async(services.reply_start)(
        thread=thread, text=text, model_name=agent_runtime.model_name()
    )
    progress = ReplyProgress()
    status, error = Message.Status.STOPPED, ""
    result = None
    try:
        history = await selectors.thread_history(thread=thread)
        result = agent_runtime.run_start(agent_runtime.history_input(history))
        yield {"type": "start", "message_id": str(assistant.pk), "thread_id": str(thread.pk)}
        last_checkpoint = time.monotonic()
        async for delta in agent_runtime.text_deltas(result):
            progress.add(delta)
            yield {"type": "token", "token": delta}
            if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                last_checkpoint = time.monotonic()
                await sync_to_async(services.reply_checkpoint)(
                    message_id=assistant.pk, content=progress.text
                )
        status = Message.Status.COMPLETED
    except agent_runtime.ModelError as exc:
        status, error = Message.Status.FAILED, str(exc)
    finally:
        if result is not None and status == Message.Status.STOPPED:
            result.cancel()
        await asyncio.shield(_finish(assistant.pk, progress, status, error))
    metrics = progress.metrics()
    if error:
        yield {"type": "error", "error": error, "message_id": str(assistant.pk)}
    else:
        yield {
            "type": "done",
            "message_id": str(assistant.pk),
            "status": status,
            "metrics": {
                "ttft_seconds": metrics.ttft_seconds,
                "token_count": metrics.token_count,
                "duration_seconds": metrics.duration_seconds,
                "tokens_per_second": metrics.tokens_per_second,
            },
        }


async def _finish(message_id: object, progress: ReplyProgress, status: str, error: str) -> None:
    try:
        await sync_to_async(services.reply_finish)(
            message_id=message_id,
            content=progress.text,
            status=status,
            metrics=progress.metrics(),
            error=error,
        )
    except Exception:
        logger.exception("could not record the end of reply %s", message_id)
