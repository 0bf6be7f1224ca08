"""The REST API's JSON for threads and messages (docs/api.md)."""

from datetime import datetime
from typing import Any

from .models import Message, Thread


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def thread_json(thread: Thread) -> dict[str, Any]:
    return {
        "id": str(thread.pk),
        "title": str(thread),
        "external_id": thread.external_id,
        "created_at": _iso(thread.created_at),
        "updated_at": _iso(thread.updated_at),
    }


def message_json(message: Message) -> dict[str, Any]:
    """A message with its status, its place in the conversation (its parent and, where
    read with them, its turn's versions) and, for replies, the run id and metrics."""
    payload: dict[str, Any] = {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": _iso(message.created_at),
        "parent_id": str(message.parent_id) if message.parent_id else None,
    }
    versions = getattr(message, "versions", None)  # selectors.Versions, where read with them
    if versions is not None:
        payload.update(version=versions.number, versions=len(versions.ids), version_ids=versions.ids)
    if message.role == Message.Role.ASSISTANT:
        payload.update(
            run_id=str(message.pk),
            model=message.model_name,
            error=message.error,
            steps=message.steps,
            metrics={
                "ttft_seconds": message.ttft_seconds,
                "token_count": message.token_count,
                "duration_seconds": message.duration_seconds,
                "tokens_per_second": message.tokens_per_second,
            },
        )
    return payload
