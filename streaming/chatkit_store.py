"""A ChatKit `Store` on this project's `Thread` and `Message` models.

ChatKit thread ids are `Thread` ids and item ids are `Message` ids, so a conversation
started from ChatKit is the same conversation in the chat page, the native API and the
admin. Every method is scoped to the requesting user: another user's thread is "not
found", whatever its id.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet

from . import errors, runs, selectors, services
from .models import Message, Thread, User

__all__ = ["ChatKitContext", "ModelStore", "NotFoundError", "item_text"]


@dataclass(frozen=True)
class ChatKitContext:
    """Who is asking: every Store call is scoped to this user."""

    user: User


def item_text(item: UserMessageItem | AssistantMessageItem) -> str:
    """The plain text of a message item (tags and other parts contribute their text)."""
    return "".join(getattr(part, "text", "") for part in item.content)


def _as_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise NotFoundError(f"No such id: {value!r}") from exc


def _thread_metadata(thread: Thread) -> ThreadMetadata:
    return ThreadMetadata(id=str(thread.pk), title=thread.title or None, created_at=thread.created_at)


def _message_item(message: Message) -> ThreadItem:
    common: dict[str, Any] = {
        "id": str(message.pk), "thread_id": str(message.thread_id), "created_at": message.created_at,
    }
    if message.role == Message.Role.USER:
        return UserMessageItem(
            **common,
            content=[UserMessageTextContent(text=message.content)],
            inference_options=InferenceOptions(),
        )
    return AssistantMessageItem(**common, content=[AssistantMessageContent(text=message.content)])


def _page(rows: list[Any], limit: int, convert: Any) -> Page[Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        data=[convert(row) for row in rows],
        has_more=more,
        after=str(rows[-1].pk) if more and rows else None,
    )


async def _after(queryset: QuerySet[Any], after: str | None, order: str) -> QuerySet[Any]:
    """Rows strictly past the row `after` in (created_at, id) order."""
    descending = order == "desc"
    rows = queryset.order_by(*(("-created_at", "-id") if descending else ("created_at", "id")))
    if after is None:
        return rows
    cursor = await queryset.filter(pk=_as_uuid(after)).values_list("created_at", "id").afirst()
    if cursor is None:
        raise NotFoundError(f"No such cursor: {after!r}")
    created, pk = cursor
    if descending:
        return rows.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))
    return rows.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=pk))


class ModelStore(Store[ChatKitContext]):
    """ChatKit's threads and items, kept as `Thread` and `Message` rows of the requester's."""

    def generate_thread_id(self, context: ChatKitContext) -> str:
        return str(uuid.uuid4())

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: ChatKitContext
    ) -> str:
        return str(uuid.uuid4())

    # Threads.

    async def _thread(self, thread_id: str, context: ChatKitContext) -> Thread:
        try:
            return await Thread.objects.aget(pk=_as_uuid(thread_id), owner=context.user)
        except (Thread.DoesNotExist, ValidationError) as exc:
            raise NotFoundError(f"No such thread: {thread_id!r}") from exc

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        return _thread_metadata(await self._thread(thread_id, context))

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        pk = _as_uuid(thread.id)
        title = (thread.title or "")[:200]
        row, created = await Thread.objects.aget_or_create(
            pk=pk, defaults={"owner": context.user, "title": title}
        )
        if row.owner_id != context.user.pk:
            raise NotFoundError(f"No such thread: {thread.id!r}")
        if not created and row.title != title:
            await Thread.objects.filter(pk=pk).aupdate(title=title)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: ChatKitContext
    ) -> Page[ThreadMetadata]:
        threads = await _after(Thread.objects.filter(owner=context.user), after, order)
        rows = [thread async for thread in threads[: limit + 1]]
        return _page(rows, limit, _thread_metadata)

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        thread = await self._thread(thread_id, context)
        await runs.thread_delete(thread=thread)

    # Items.

    def _messages(self, thread_id: str, context: ChatKitContext) -> QuerySet[Message]:
        return Message.objects.filter(thread_id=_as_uuid(thread_id), thread__owner=context.user)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: ChatKitContext
    ) -> Page[ThreadItem]:
        thread = await self._thread(thread_id, context)
        shown = await selectors.shown_ids(thread=thread)  # the branch the chat page shows
        messages = await _after(self._messages(thread_id, context).filter(pk__in=shown), after, order)
        rows = [message async for message in messages[: limit + 1]]
        return _page(rows, limit, _message_item)

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> ThreadItem:
        try:
            message = await self._messages(thread_id, context).aget(pk=_as_uuid(item_id))
        except Message.DoesNotExist as exc:
            raise NotFoundError(f"No such item: {item_id!r}") from exc
        return _message_item(message)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        """Messages are kept; other items (ChatKit's hidden context notes, widgets) have no
        place in this project's history and are not stored. An assistant message that a
        run produced is already recorded by the run, which stays the record of it."""
        if not isinstance(item, (UserMessageItem, AssistantMessageItem)):
            return
        thread = await self._thread(thread_id, context)
        role = Message.Role.USER if isinstance(item, UserMessageItem) else Message.Role.ASSISTANT
        pk = _as_uuid(item.id)
        text = item_text(item)

        def upsert() -> None:
            with transaction.atomic():
                existing = Message.objects.select_for_update().filter(pk=pk).first()
                if existing is None:
                    services.message_append(thread=thread, role=role, content=text, pk=pk)
                elif existing.thread_id != thread.pk:
                    raise NotFoundError(f"No such item: {item.id!r}")
                elif role == Message.Role.USER and existing.content != text:
                    Message.objects.filter(pk=pk).update(content=text)

        await sync_to_async(upsert)()

    async def delete_thread_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> None:
        await self._messages(thread_id, context).filter(pk=_as_uuid(item_id)).adelete()

    # Attachments are not offered (the ChatKit page turns them off).

    async def save_attachment(self, attachment: Attachment, context: ChatKitContext) -> None:
        raise NotFoundError(errors.NO_ATTACHMENTS)

    async def load_attachment(self, attachment_id: str, context: ChatKitContext) -> Attachment:
        raise NotFoundError(errors.NO_ATTACHMENTS)

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        raise NotFoundError(errors.NO_ATTACHMENTS)
