"""Reads: what a user may see, and what a run is made of."""

from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, F, FloatField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Greatest

from .models import Message, Thread, User


@dataclass(frozen=True)
class HistoryTurn:
    """One earlier message of a conversation, as the agent is given it (a reply with the
    steps it took: its tool calls are given back to the model with their results)."""

    role: str
    content: str
    steps: tuple[dict[str, Any], ...] = ()


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
    """The conversation as shown: the branch ending at the thread's current message, oldest
    first, each message with its `versions` (`Versions`)."""
    return shown_branch([m async for m in thread.messages.order_by("created_at")], thread.current_id)


async def thread_all_messages(*, thread: Thread) -> list[Message]:
    """Every message of every branch, oldest first, each with its `versions`."""
    messages = [m async for m in thread.messages.order_by("created_at")]
    number_versions(messages, messages)
    return messages


@dataclass(frozen=True)
class Versions:
    """A message among the versions of its turn (the messages with its parent): regenerated
    replies, edited messages. `ids` oldest first; `number` is 1-based."""

    number: int
    ids: list[str]


def shown_branch(messages: list[Message], leaf_id: object) -> list[Message]:
    """The branch of `messages` (a conversation's, oldest first) that ends at `leaf_id`
    (at the last message if that is not one of them), root first, versions numbered."""
    by_id = {m.pk: m for m in messages}
    leaf = by_id.get(leaf_id) or (messages[-1] if messages else None)
    branch: list[Message] = []
    seen: set[object] = set()
    while leaf is not None and leaf.pk not in seen:
        seen.add(leaf.pk)
        branch.append(leaf)
        leaf = by_id.get(leaf.parent_id)
    branch.reverse()
    number_versions(branch, messages)
    return branch


def number_versions(numbered: list[Message], messages: list[Message]) -> None:
    """Set `versions` on each of `numbered`, counting its turn's versions in `messages`."""
    turns: dict[object, list[str]] = {}
    for m in messages:
        turns.setdefault(m.parent_id, []).append(str(m.pk))
    for m in numbered:
        ids = turns.get(m.parent_id, [str(m.pk)])
        m.versions = Versions(ids.index(str(m.pk)) + 1, ids)  # type: ignore[attr-defined]


def branch_leaf(messages: list[Message], message_id: object) -> Message | None:
    """Where a branch shown from `message_id` on ends: following, from it, the most recent
    message of each turn. None if `message_id` is not one of `messages` (oldest first)."""
    latest_child: dict[object, Message] = {}
    found = None
    for m in messages:  # oldest first: the last child seen is the most recent
        latest_child[m.parent_id] = m
        if str(m.pk) == str(message_id):
            found = m
    seen: set[object] = set()
    while found is not None and found.pk in latest_child and found.pk not in seen:
        seen.add(found.pk)
        found = latest_child[found.pk]
    return found


def thread_rows(thread: Thread, *fields: str) -> QuerySet[Message]:
    """The thread's messages, oldest first, with only `fields` read (and the thread's id:
    without it Django would load it row by row, to tie each row to `thread`)."""
    return thread.messages.order_by("created_at").only("id", "thread", *fields)


async def shown_ids(*, thread: Thread) -> list[object]:
    """The ids of the messages shown (`thread_messages`), oldest first."""
    rows = [m async for m in thread_rows(thread, "parent_id")]
    return [m.pk for m in shown_branch(rows, thread.current_id)]


def history_to(*, thread: Thread, message_id: object) -> list[HistoryTurn]:
    """The turns with text of the branch ending at `message_id`, oldest first, as agent
    input."""
    rows = list(thread_rows(thread, "parent_id", "role", "content", "steps"))
    return [
        HistoryTurn(role=m.role, content=m.content, steps=tuple(m.steps or ()))
        for m in shown_branch(rows, message_id)
        if m.content or m.steps
    ]


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


async def reply_to_regenerate(*, user: User, run_id: object) -> Message | None:
    """The reply with its thread if `user` owns it, else None."""
    replies = Message.objects.filter(role=Message.Role.ASSISTANT, thread__owner=user).select_related("thread")
    try:
        return await replies.aget(pk=run_id)
    except (Message.DoesNotExist, ValidationError, ValueError, TypeError):
        return None


async def message_in_thread(*, thread: Thread, message_id: object) -> Message | None:
    try:
        return await thread.messages.aget(pk=message_id)
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
    return str(reply.parent_id or "")


# Searching a user's conversations (GET /api/threads?q=).

THREAD_PAGE_SIZE = 50
# 'simple': no stemming and no stop words. Conversations are in any language, a search box
# is typed word by word, and every word is matched as a prefix, which finds what stemming
# would ("comput" finds "computer" and "computing") without an English stemmer's surprises
# on half-typed words, and without "to be" or "the" matching nothing at all.
SEARCH_CONFIG = "simple"


@dataclass(frozen=True)
class ThreadPage:
    """One page of a user's conversations; `next_page` is None on the last."""

    threads: list[Thread]
    next_page: int | None


async def thread_search(
    *, user: User, text: str = "", page: int = 1, per_page: int = THREAD_PAGE_SIZE
) -> ThreadPage:
    """The user's own conversations whose title, or one of whose messages, has every word
    of `text` (as a word's beginning, on PostgreSQL), best match first, then most recently
    active; with no words, all of them, most recently active first. Page `page` (1-based)
    of `per_page`."""
    threads = Thread.objects.filter(owner=user)
    words = text.split()
    if not words:
        ordered = threads.order_by("-updated_at", "pk")
    elif full_text_search():
        ordered = _ranked_by_full_text(threads, words)
    else:
        ordered = _ranked_by_substring(threads, words)
    start = (page - 1) * per_page
    found = [t async for t in ordered[start : start + per_page + 1]]
    more = len(found) > per_page
    return ThreadPage(threads=found[:per_page], next_page=page + 1 if more else None)


def full_text_search() -> bool:
    """Whether the database is PostgreSQL, whose full-text search is used; SQLite (local
    runs) matches substrings instead."""
    return connection.vendor == "postgresql"


def prefix_query(words: list[str]) -> SearchQuery:
    """A query matching documents that have every one of `words` as a word's beginning.
    Each word is quoted (quotes and backslashes escaped), so nothing typed is read as an
    operator; PostgreSQL splits and normalizes it as it does the documents' text."""
    quoted = ("'" + w.replace("\\", "\\\\").replace("'", "''") + "':*" for w in words)
    return SearchQuery(" & ".join(quoted), search_type="raw", config=SEARCH_CONFIG)


def _ranked_by_full_text(threads: QuerySet[Thread], words: list[str]) -> QuerySet[Thread]:
    """PostgreSQL: threads whose title or one message matches, by the better of the title's
    rank (weighted above a message's) and its best message's."""
    query = prefix_query(words)
    matching_messages = Message.objects.alias(
        document=SearchVector("content", config=SEARCH_CONFIG)
    ).filter(thread=OuterRef("pk"), document=query)
    best_message = matching_messages.annotate(rank=SearchRank(F("document"), query))
    zero = Value(0.0, output_field=FloatField())
    return (
        threads.alias(title_document=SearchVector("title", config=SEARCH_CONFIG, weight="A"))
        .filter(Q(title_document=query) | Exists(matching_messages))
        .annotate(
            rank=Greatest(
                Coalesce(SearchRank(F("title_document"), query), zero),
                Coalesce(Subquery(best_message.order_by("-rank").values("rank")[:1]), zero),
            )
        )
        .order_by("-rank", "-updated_at", "pk")
    )


def _ranked_by_substring(threads: QuerySet[Thread], words: list[str]) -> QuerySet[Thread]:
    """Elsewhere (SQLite): threads whose title or one message contains every word, in any
    case; title matches first."""
    in_title = Q()
    in_message = Q()
    for word in words:
        in_title &= Q(title__icontains=word)
        in_message &= Q(content__icontains=word)
    message_match = Exists(Message.objects.filter(in_message, thread=OuterRef("pk")))
    return (
        threads.annotate(title_match=in_title)
        .filter(Q(title_match=True) | message_match)
        .order_by("-title_match", "-updated_at", "pk")
    )
