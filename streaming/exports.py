"""A conversation as a file (GET /api/threads/<id>/export): Markdown to read, JSON to
process. Messages are exported as they are stored: their text as is, never rendered."""

from datetime import datetime
from typing import Any

from django.utils.text import slugify

from .models import Message, Thread
from .serializers import message_json, thread_json

FILENAME_LENGTH = 80
EXTENSIONS = {"markdown": "md", "json": "json"}
CONTENT_TYPES = {"markdown": "text/markdown; charset=utf-8", "json": "application/json"}
AUTHORS = {Message.Role.USER: "You", Message.Role.ASSISTANT: "Assistant"}


def filename(thread: Thread, kind: str) -> str:
    """The title as a file name (`holiday-plans.md`); letters of any script are kept."""
    stem = slugify(str(thread), allow_unicode=True)[:FILENAME_LENGTH].strip("-_")
    return f"{stem or 'conversation'}.{EXTENSIONS[kind]}"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def markdown(thread: Thread, messages: list[Message]) -> str:
    """The title as the heading, then one section per message: who and when, then its
    text. A reply that did not complete says how it ended (and its error, if any)."""
    parts = [f"# {' '.join(str(thread).split())}\n"]
    for message in messages:
        heading = f"## {AUTHORS.get(message.role, message.role)} — {_when(message.created_at)}"
        if message.status != Message.Status.COMPLETED:
            heading += f" ({message.status})"
        parts.append(heading + "\n")
        if message.content:
            parts.append(message.content.rstrip("\n") + "\n")
        if message.error:
            parts.append(f"> {' '.join(message.error.split())}\n")
    return "\n".join(parts)


def document(thread: Thread, messages: list[Message], *, exported_at: datetime) -> dict[str, Any]:
    """The thread and its messages as the REST API gives them, and when they were read."""
    return {
        "thread": thread_json(thread),
        "messages": [message_json(m) for m in messages],
        "exported_at": exported_at.isoformat(),
    }
