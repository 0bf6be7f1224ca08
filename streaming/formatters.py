"""One formatter per wire shape: how a run's events look on each transport.

Native events are the log's events as they are (`run_id`, `seq`, `type`, ...). The seed
shapes are those of the eight streaming examples, with native fields added where the
examples' clients ignore them.
"""

import json
from typing import Any

from .events import Event

SSE_RETRY_MS = 2000
HEARTBEAT = b": ping\n\n"


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def sse_native(event: Event) -> bytes:
    """`id: <seq>` and the event as JSON, in one piece."""
    return b"id: %d\ndata: %s\n\n" % (event["seq"], _json(event))


def sse_data(payload: dict[str, Any]) -> bytes:
    """A `data:` line and the blank line that ends the event, in one piece."""
    return b"data: " + _json(payload) + b"\n\n"


def sse_preamble() -> bytes:
    """Tells EventSource how long to wait before reconnecting."""
    return b"retry: %d\n\n" % SSE_RETRY_MS


def seed_message(event: Event) -> dict[str, Any]:
    """`/api/stream/message` and the WebSocket: `{"type": "token", "token": ...}` events,
    `{"type": "error", "error": ...}` for failures; other events keep their native type."""
    if event["type"] == "delta":
        return {"type": "token", "token": event["text"], "run_id": event["run_id"], "seq": event["seq"]}
    if event["type"] in ("failed", "interrupted"):
        return {**event, "type": "error", "error": event.get("error", ""), "status": event["type"]}
    return dict(event)


def sse_seed_message(event: Event) -> bytes:
    return sse_data(seed_message(event))


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def thread_json(thread: Any) -> dict[str, Any]:
    return {
        "id": str(thread.pk),
        "title": str(thread),
        "external_id": thread.external_id,
        "created_at": _iso(thread.created_at),
        "updated_at": _iso(thread.updated_at),
    }


def message_json(message: Any) -> dict[str, Any]:
    """A message with its status and, for replies, the run id and metrics."""
    payload = {
        "id": str(message.pk),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "created_at": _iso(message.created_at),
    }
    if message.role == "assistant":
        payload.update(
            run_id=str(message.pk),
            model=message.model_name,
            error=message.error,
            metrics={
                "ttft_seconds": message.ttft_seconds,
                "token_count": message.token_count,
                "duration_seconds": message.duration_seconds,
                "tokens_per_second": message.tokens_per_second,
            },
        )
    return payload
