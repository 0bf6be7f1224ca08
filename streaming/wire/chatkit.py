"""ChatKit's wire: a run's events as ChatKit thread stream events, for the self-hosted
ChatKit endpoint (`openai-chatkit`'s server serializes them to SSE itself)."""

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ErrorEvent,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)

from ..events import Event, failure_text, is_delta, is_terminal


class ChatKitReply:
    """One assistant item in a ChatKit thread, following the run that produces it."""

    def __init__(self, item: AssistantMessageItem) -> None:
        self.item = item
        self.parts: list[str] = []  # the text so far

    def opening(self) -> list[ThreadStreamEvent]:
        """The item, and its (empty) text part, before the run's events."""
        return [
            ThreadItemAddedEvent(item=self.item),
            ThreadItemUpdatedEvent(
                item_id=self.item.id,
                update=AssistantMessageContentPartAdded(
                    content_index=0, content=AssistantMessageContent(text="")
                ),
            ),
        ]

    def events(self, event: Event) -> list[ThreadStreamEvent]:
        """ChatKit's events for one of the run's events."""
        if is_delta(event):
            self.parts.append(event["text"])
            update = AssistantMessageContentPartTextDelta(content_index=0, delta=event["text"])
            return [ThreadItemUpdatedEvent(item_id=self.item.id, update=update)]
        if not is_terminal(event):
            return []
        error = failure_text(event)
        if error is None:
            return self._done()
        done = self._done() if self.parts else []
        return [*done, ErrorEvent(code="custom", message=error, allow_retry=True)]

    def _done(self) -> list[ThreadStreamEvent]:
        content = AssistantMessageContent(text="".join(self.parts))
        return [
            ThreadItemUpdatedEvent(
                item_id=self.item.id,
                update=AssistantMessageContentPartDone(content_index=0, content=content),
            ),
            ThreadItemDoneEvent(item=self.item.model_copy(update={"content": [content]})),
        ]
