"""Writes: threads, messages and the records of replies."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, TextField, Value, When
from django.utils import timezone

from .events import Metrics
from .models import Message, Thread, User

TITLE_LENGTH = 60


def title_from_text(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1] + "…"


NO_METRICS: Metrics = {
    "ttft_seconds": None, "token_count": 0, "duration_seconds": 0.0, "tokens_per_second": None,
}


def guest_user_create() -> User:
    """A guest user (no usable password), bound to a browser session by its caller."""
    user = User(username=f"guest-{uuid.uuid4().hex[:16]}", is_guest=True)
    user.set_unusable_password()
    user.save()
    return user


def thread_create(*, owner: User, title: str = "", external_id: str | None = None) -> Thread:
    return Thread.objects.create(owner=owner, title=title, external_id=external_id)


def thread_for_external_id(*, owner: User, external_id: str) -> Thread:
    """The owner's thread named `external_id` by a client (created on first use)."""
    thread, _ = Thread.objects.get_or_create(owner=owner, external_id=external_id)
    return thread


def thread_rename(*, thread: Thread, title: str) -> Thread:
    thread.title = title
    thread.save(update_fields=["title", "updated_at"])
    return thread


def thread_delete(*, thread: Thread) -> None:
    """Delete a thread with its messages."""
    thread.delete()


@transaction.atomic
def reply_start(
    *,
    thread: Thread | None,
    owner: User,
    text: str,
    model_name: str,
    client_id: str | None = None,
    user_message: Message | None = None,
) -> tuple[Message, Message]:
    """Save the user's message (unless `user_message`, already saved, is given) and an
    empty assistant message in state `streaming`, in `thread` or a new thread of `owner`'s.

    Raises `IntegrityError` (and saves nothing) if a reply with `client_id` exists."""
    if thread is None:
        thread = Thread.objects.create(owner=owner)
    if user_message is None:
        user_message = Message.objects.create(
            thread=thread, role=Message.Role.USER, content=text, status=Message.Status.COMPLETED
        )
    assistant = Message.objects.create(
        thread=thread,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model_name,
        client_id=client_id,
    )
    fields = {"updated_at": timezone.now()}
    if not thread.title:
        fields["title"] = title_from_text(text)
    Thread.objects.filter(pk=thread.pk).update(**fields)
    return user_message, assistant


def replies_checkpoint(*, contents: dict[str, str]) -> None:
    """Save the text so far of replies still streaming, all in one UPDATE."""
    if not contents:
        return
    whens = [When(pk=pk, then=Value(content)) for pk, content in contents.items()]
    text = Case(*whens, output_field=TextField())
    Message.objects.filter(pk__in=list(contents), status=Message.Status.STREAMING).update(
        content=text, updated_at=timezone.now()
    )


def _ending(*, content: str, status: str, metrics: Metrics, error: str) -> dict[str, object]:
    return {
        "content": content,
        "status": status,
        "error": error,
        **metrics,
        "updated_at": timezone.now(),
    }


def reply_finish(
    *, message_id: object, content: str, status: str, metrics: Metrics, error: str = ""
) -> None:
    """Store a reply's final text, terminal status and metrics."""
    Message.objects.filter(pk=message_id).update(
        **_ending(content=content, status=status, metrics=metrics, error=error)
    )


def reply_interrupt(*, message_id: object, content: str, metrics: Metrics, error: str) -> None:
    """End a reply whose run died, if it is still marked as streaming."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        **_ending(content=content, status=Message.Status.INTERRUPTED, metrics=metrics, error=error)
    )


def replies_touch(*, message_ids: list[str]) -> None:
    """Mark live replies as alive (their run's worker is running them)."""
    Message.objects.filter(pk__in=message_ids, status=Message.Status.STREAMING).update(
        updated_at=timezone.now()
    )


def replies_sweep_stale(*, older_than: float, keep: list[str], error: str) -> int:
    """Mark `streaming` replies untouched for `older_than` seconds as interrupted."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return (
        Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
        .exclude(pk__in=keep)
        .update(status=Message.Status.INTERRUPTED, error=error, updated_at=timezone.now())
    )


def run_limit_reached(*, user: User, sent: object = None) -> str:
    """Why `user` may not start a run now, or "" if they may (`sent`: the id of the
    message that asks for it, if already saved, which does not count against the limit)."""
    replies = Message.objects.filter(thread__owner=user).exclude(pk=sent)
    streaming = replies.filter(role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
    limit = settings.CHAT_MAX_CONCURRENT_RUNS
    if streaming.count() >= limit:
        return f"You already have {limit} replies generating; wait for one to finish or stop it."
    per_minute = settings.CHAT_MESSAGES_PER_MINUTE
    recent = replies.filter(
        role=Message.Role.USER, created_at__gte=timezone.now() - timedelta(minutes=1)
    )
    if recent.count() >= per_minute:
        return f"You can send at most {per_minute} messages a minute; try again shortly."
    return ""
