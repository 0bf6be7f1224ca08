"""Reads: what a user may see, and what a run is made of."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from .models import Message, Thread, User


@dataclass(frozen=True)
class HistoryTurn:
    """One earlier message of a conversation, as the agent is given it."""

    role: str
    content: str


async def thread_for_user(*, user: User, thread_id: object) -> Thread | None:
    """The thread if it exists and `user` owns it, else None (callers answer 404). The chat
    serves owners only, staff included: staff read conversations in the admin."""
    try:
        return await Thread.objects.aget(pk=thread_id, owner=user)
    except (Thread.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


async def thread_owned(*, user: User, thread_id: object) -> Thread:
    """The thread if `user` owns it; raises `Thread.DoesNotExist` otherwise."""
    return await Thread.objects.aget(pk=thread_id, owner=user)


async def thread_list_for_user(*, user: User, limit: int = 100) -> list[Thread]:
    """The user's own threads, most recently active first."""
    return [t async for t in Thread.objects.filter(owner=user).order_by("-updated_at")[:limit]]


async def thread_messages(*, thread: Thread) -> list[Message]:
    return [m async for m in thread.messages.order_by("created_at")]


def history_of(*, thread: Thread) -> list[HistoryTurn]:
    """The thread's turns with text, oldest first, as agent input."""
    rows = thread.messages.exclude(content="").order_by("created_at").values_list("role", "content")
    return [HistoryTurn(role=role, content=content) for role, content in rows]


async def thread_live_runs(*, thread: Thread) -> list[str]:
    """The ids of the thread's replies still generating."""
    replies = thread.messages.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    return [str(pk) async for pk in replies.values_list("pk", flat=True)]


async def message_get(*, message_id: object) -> Message:
    return await Message.objects.aget(pk=message_id)


async def reply_for_user(*, user: User, run_id: object) -> Message | None:
    """The run's reply message (id, thread id and status only) if `user` owns its thread,
    else None (staff included)."""
    if not user.is_authenticated:
        return None
    # Without its text: a follower checks whose reply it is, and reads the text from the
    # log (a long reply's text, loaded for every stream and poll, would cost its size each).
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, thread__owner=user).only(
        "id", "thread_id", "status"
    )
    try:
        return await replies.aget(pk=run_id)
    except (Message.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


async def reply_status(*, run_id: str) -> str | None:
    """The reply's status, or None if it is gone (its conversation was deleted)."""
    status: str | None = await Message.objects.values_list("status", flat=True).filter(pk=run_id).afirst()
    return status


async def reply_by_client_key(*, key: str) -> Message | None:
    """The reply a client's message id (scoped to its user) started, if any."""
    return await Message.objects.filter(client_id=key).afirst()


async def question_of(*, reply: Message) -> str:
    """The id of the user message a reply answers ("" if none)."""
    asked = await (
        Message.objects.filter(
            thread_id=reply.thread_id, role=Message.Role.USER, created_at__lte=reply.created_at
        )
        .order_by("-created_at")
        .values_list("pk", flat=True)
        .afirst()
    )
    return str(asked or "")
