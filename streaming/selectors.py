"""Reads: what a user may see."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from .agent_runtime import HistoryTurn
from .models import Message, Thread, User


def thread_visible_to(user: User) -> QuerySet[Thread]:
    """Threads `user` may read: their own, or every thread for staff."""
    threads = Thread.objects.all()
    return threads if user.is_staff else threads.filter(owner=user)


async def thread_for_user(*, user: User, thread_id: object) -> Thread | None:
    """The thread if it exists and `user` may read it, else None (callers answer 404)."""
    try:
        return await thread_visible_to(user).aget(pk=thread_id)
    except (Thread.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


async def thread_list_for_user(*, user: User, limit: int = 100) -> list[Thread]:
    """The user's own threads, most recently active first."""
    return [t async for t in Thread.objects.filter(owner=user).order_by("-updated_at")[:limit]]


async def thread_messages(*, thread: Thread) -> list[Message]:
    return [m async for m in thread.messages.order_by("created_at")]


async def thread_history(*, thread: Thread) -> list[HistoryTurn]:
    """The thread's turns with text, oldest first, as agent input."""
    rows = thread.messages.exclude(content="").order_by("created_at").values_list("role", "content")
    return [HistoryTurn(role=role, content=content) async for role, content in rows]
