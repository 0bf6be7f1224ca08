"""Writes: threads, messages and the records of replies."""

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, TextField, Value, When
from django.utils import timezone

from .events import Metrics
from .models import Message, Thread, User
from .selectors import HistoryTurn, branch_leaf, history_to, thread_rows

TITLE_LENGTH = 60


def title_from_text(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1] + "…"


NO_METRICS: Metrics = {
    "ttft_seconds": None, "token_count": 0, "duration_seconds": 0.0, "tokens_per_second": None,
}


class LimitReached(Exception):
    """The user may not start a run or a conversation now; the message says why."""


def guest_user_create() -> User:
    """A guest user (no usable password), bound to a browser session by its caller."""
    user = User(username=f"guest-{uuid.uuid4().hex[:16]}", is_guest=True)
    user.set_unusable_password()
    user.save()
    return user


def thread_create(*, owner: User, title: str = "", external_id: str | None = None) -> Thread:
    """A new thread; `LimitReached` if `owner` has started `CHAT_THREADS_PER_HOUR` already."""
    refusal = _thread_limit_refusal(owner)
    if refusal:
        raise LimitReached(refusal)
    return Thread.objects.create(owner=owner, title=title, external_id=external_id)


def _thread_limit_refusal(user: User) -> str:
    since = timezone.now() - timedelta(hours=1)
    return _thread_limit_text(Thread.objects.filter(owner=user, created_at__gte=since).count())


def _thread_limit_text(started_within_an_hour: int) -> str:
    per_hour = settings.CHAT_THREADS_PER_HOUR
    if started_within_an_hour >= per_hour:
        return f"You can start at most {per_hour} conversations an hour; try again later."
    return ""


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


@dataclass(frozen=True)
class Admitted:
    """A run admitted and recorded: the user's message, the `streaming` reply, the
    conversation so far as the agent is given it (the user's message last), and the
    message the thread showed last before (restored if the run is discarded)."""

    user_message: Message
    reply: Message
    history: list[HistoryTurn]
    shown_before: object = None


class NotAllowed(Exception):
    """What a run was asked to branch from cannot be branched from; the message says why.
    `conflict`: it could be, later (a reply still being written)."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@transaction.atomic
def run_admit(
    *,
    thread: Thread | None,
    owner: User,
    text: str,
    model_name: str,
    client_id: str | None = None,
    user_message: Message | None = None,
    edit_of: Message | None = None,
    regenerate: Message | None = None,
) -> Admitted:
    """Admit a run for `owner` and record it, in one transaction: check the per-user limits,
    save the user's message (unless `user_message`, already saved, is given) and an empty
    assistant message in state `streaming`, in `thread` or a new thread of `owner`'s, make
    the reply the thread's current message, and read the conversation for the agent.

    The user's message continues the branch shown (the thread's current message), or, with
    `edit_of` (one of the thread's user messages), is a new version of that message. With
    `regenerate` (one of the thread's finished replies) no message is saved: the reply is
    a new version of `regenerate`, answering the same message with the same history.

    The limits are checked under a lock on the owner's row, so that starts racing on any
    worker are admitted one at a time and each sees the runs admitted before it. Raises
    `LimitReached`, `NotAllowed`, or `IntegrityError` if a reply with `client_id` exists;
    in each case nothing is saved."""
    _lock_owner(owner)
    counts = _admission_counts(owner, thread)
    refusal = _limit_refusal(counts) or (_thread_limit_text(counts.threads) if thread is None else "")
    if refusal:
        raise LimitReached(refusal)
    created = thread is None
    reply_id = uuid.uuid4()
    if thread is None:
        # Made showing its reply already: the reference is checked when the transaction
        # commits (Django's foreign keys are deferred), once the reply exists.
        thread = Thread.objects.create(owner=owner, title=title_from_text(text), current_id=reply_id)
        shown_before = None
    else:
        shown_before = counts.current_id
    new_message: Message | None = None
    if regenerate is not None:
        user_message = _question_to_regenerate(thread, regenerate)
    elif user_message is None:
        parent = shown_before
        if edit_of is not None:
            if edit_of.thread_id != thread.pk or edit_of.role != Message.Role.USER:
                raise NotAllowed("Only a message you sent in this conversation can be edited.")
            parent = edit_of.parent_id
        user_message = new_message = Message(
            thread=thread, parent_id=parent, role=Message.Role.USER, content=text,
            status=Message.Status.COMPLETED,
        )
    elif user_message.parent_id is None and shown_before not in (None, user_message.pk):
        user_message.parent_id = shown_before  # saved by a client's store, before the run
        user_message.save(update_fields=["parent"])
    reply = Message(
        id=reply_id,
        thread=thread,
        parent=user_message,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model_name=model_name,
        client_id=client_id,
    )
    # Both messages in one INSERT (the question first: its time is the earlier).
    Message.objects.bulk_create([new_message, reply] if new_message is not None else [reply])
    if not created:
        fields: dict[str, object] = {"current": reply, "updated_at": timezone.now()}
        if not thread.title:
            fields["title"] = title_from_text(text)
        Thread.objects.filter(pk=thread.pk).update(**fields)
    thread.current = reply
    if created:
        history = [HistoryTurn(role=Message.Role.USER, content=text)]
    else:
        history = history_to(thread=thread, message_id=user_message.pk)
    return Admitted(user_message, reply, history, shown_before)


def _question_to_regenerate(thread: Thread, reply: Message) -> Message:
    if reply.thread_id != thread.pk or reply.role != Message.Role.ASSISTANT or reply.parent_id is None:
        raise NotAllowed("Only a reply in this conversation can be regenerated.")
    if reply.status == Message.Status.STREAMING:
        raise NotAllowed(
            "This reply is still being written; stop it or wait for it to finish first.", conflict=True
        )
    return Message.objects.get(pk=reply.parent_id)


@transaction.atomic
def run_discard(*, admitted: Admitted, keep_message: bool, keep_thread: bool) -> None:
    """Undo an admitted run that could not be started: its reply, the user's message
    (unless the caller had saved it) and its thread (unless it existed before, or has other
    messages by now); the thread shows again what it showed before."""
    admitted.reply.delete()
    if not keep_message:
        admitted.user_message.delete()
    thread = admitted.reply.thread
    if not keep_thread and not thread.messages.exists():
        thread.delete()
    else:
        Thread.objects.filter(pk=thread.pk, current=None).update(current=admitted.shown_before)


def message_append(*, thread: Thread, role: str, content: str, pk: object = None) -> Message:
    """A message recorded outside a run (a client's store), continuing the branch shown."""
    current = Thread.objects.select_for_update().filter(pk=thread.pk).values_list("current_id", flat=True).get()
    message = Message.objects.create(pk=pk, thread=thread, parent_id=current, role=role, content=content)
    Thread.objects.filter(pk=thread.pk).update(current=message)
    return message


def branch_show(*, thread: Thread, message_id: object) -> Message | None:
    """Show the branch through `message_id` (one of the thread's messages): from it, the
    most recent version of each later turn. Returns the branch's last message, or None
    if `message_id` is not the thread's."""
    with transaction.atomic():
        Thread.objects.select_for_update().filter(pk=thread.pk).values_list("pk").get()
        rows = list(thread_rows(thread, "parent_id"))
        leaf = branch_leaf(rows, message_id)
        if leaf is not None:
            Thread.objects.filter(pk=thread.pk).update(current=leaf)
            thread.current_id = leaf.pk
        return leaf


def _lock_owner(owner: User) -> None:
    """Lock `owner`'s row until the transaction ends: starts racing on any worker are
    admitted one at a time, and each counts (in a statement after the lock, so with a
    snapshot taken after it) the runs admitted before it."""
    if connection.features.has_select_for_update:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {User._meta.db_table} WHERE id = %s FOR UPDATE", [owner.pk])


@dataclass(frozen=True)
class AdmissionCounts:
    """What admitting a run reads, in one query: `owner`'s replies generating now and
    started within a minute, conversations started within an hour, and the message the
    conversation shows (None for a new conversation)."""

    streaming: int
    recent: int
    threads: int
    current_id: uuid.UUID | None


def _admission_counts(owner: User, thread: Thread | None) -> AdmissionCounts:
    now = timezone.now()
    ops, message, thread_table = connection.ops, Message._meta.db_table, Thread._meta.db_table
    replies = (
        f"SELECT COUNT(*) FROM {message} m INNER JOIN {thread_table} t ON m.thread_id = t.id "
        "WHERE t.owner_id = %s AND m.role = %s AND m.{} "
    )
    thread_pk = None if thread is None else Thread._meta.pk.get_db_prep_value(thread.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ({replies.format('status = %s')}), ({replies.format('created_at >= %s')}), "
            f"(SELECT COUNT(*) FROM {thread_table} WHERE owner_id = %s AND created_at >= %s), "
            f"(SELECT current_id FROM {thread_table} WHERE id = %s)",
            [
                owner.pk, Message.Role.ASSISTANT.value, Message.Status.STREAMING.value,
                owner.pk, Message.Role.ASSISTANT.value, ops.adapt_datetimefield_value(now - timedelta(minutes=1)),
                owner.pk, ops.adapt_datetimefield_value(now - timedelta(hours=1)),
                thread_pk,
            ],
        )
        streaming, recent, threads, current = cursor.fetchone()
    current_id = None if current is None else Message._meta.pk.to_python(current)
    return AdmissionCounts(streaming, recent, threads, current_id)


def _limit_refusal(counts: AdmissionCounts) -> str:
    """Why the owner may not start a run now, or "" if they may. Every run counts, however
    it was started (a message, a regenerated reply, a ChatKit retry): concurrent ones
    against `CHAT_MAX_CONCURRENT_RUNS`, and those started within a minute against
    `CHAT_MESSAGES_PER_MINUTE`."""
    limit = settings.CHAT_MAX_CONCURRENT_RUNS
    if counts.streaming >= limit:
        return f"You already have {limit} replies generating; wait for one to finish or stop it."
    per_minute = settings.CHAT_MESSAGES_PER_MINUTE
    if counts.recent >= per_minute:
        return f"You can send at most {per_minute} messages a minute; try again shortly."
    return ""


def replies_checkpoint(*, contents: dict[str, str]) -> None:
    """Save the text so far of replies still streaming, all in one UPDATE."""
    if not contents:
        return
    whens = [When(pk=pk, then=Value(content)) for pk, content in contents.items()]
    text = Case(*whens, output_field=TextField())
    Message.objects.filter(pk__in=list(contents), status=Message.Status.STREAMING).update(
        content=text, updated_at=timezone.now()
    )


def _ending(
    *, content: str, status: str, metrics: Metrics, error: str, steps: list[dict[str, Any]]
) -> dict[str, object]:
    return {
        "content": content,
        "steps": steps,
        "status": status,
        "error": error,
        **metrics,
        "updated_at": timezone.now(),
    }


@dataclass(frozen=True)
class Ending:
    """How a reply ended, as stored."""

    status: str
    metrics: Metrics
    error: str


def reply_finish(
    *, message_id: object, content: str, status: str, metrics: Metrics, error: str = "",
    steps: list[dict[str, Any]] | None = None,
) -> Ending:
    """Store a reply's final text, terminal status and metrics, unless it has ended already
    (the first end stored wins). Returns the ending the reply has now: the one given, or
    the earlier one (or the one given, if the reply is gone with its conversation)."""
    ended = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        **_ending(content=content, status=status, metrics=metrics, error=error, steps=steps or [])
    )
    if not ended:
        stored = Message.objects.filter(pk=message_id).values("status", "error", *Metrics.__annotations__).first()
        if stored is not None:
            values: Metrics = {key: stored[key] for key in Metrics.__annotations__}  # type: ignore[assignment]
            return Ending(stored["status"], values, stored["error"])
    return Ending(status, metrics, error)


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
