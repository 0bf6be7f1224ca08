"""One formatter per wire shape: how a run's events look on each transport.

Native events are the log's events as they are (`run_id`, `seq`, `type`, ...). The seed
shapes are those of the eight streaming examples, with native fields added where the
examples' clients ignore them.
"""

import json
from collections.abc import Callable
from typing import Any

from .events import Event, is_terminal

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


# The seed examples' SSE shapes. Each takes the log's events and returns the `data` payload
# (or None to send nothing); `seed_sse` frames it with `id: <seq>` for resuming.


def seed_sse(shape: Callable[[Event], dict[str, Any] | None]) -> Callable[[Event], bytes | None]:
    def format_event(event: Event) -> bytes | None:
        payload = shape(event)
        if payload is None:
            return None
        return b"id: %d\ndata: %s\n\n" % (event["seq"], _json(payload))

    return format_event


def _failure(event: Event) -> str | None:
    if event["type"] in ("failed", "interrupted"):
        return event.get("error") or "The reply failed."
    return None


def buffered_shape(event: Event) -> dict[str, Any] | None:
    """`{"tokens", "count"}`; the stream always ends with `"final": true`."""
    if event["type"] == "delta":
        return {"tokens": event["text"], "count": event["tokens"], "seq": event["seq"]}
    if is_terminal(event):
        payload: dict[str, Any] = {"tokens": "", "count": 0, "final": True, "status": event["type"]}
        error = _failure(event)
        if error:
            payload["error"] = error
        return payload
    return None


def resilient_shape(message_id: str) -> Callable[[Event], dict[str, Any] | None]:
    """`{"token", "token_count", "message_id"}`; errors `{"type": "error", "error", "message_id"}`."""

    def shape(event: Event) -> dict[str, Any] | None:
        if event["type"] == "delta":
            return {
                "token": event["text"], "token_count": event["token_count"],
                "message_id": message_id, "seq": event["seq"],
            }
        error = _failure(event)
        if error:
            return {"type": "error", "error": error, "message_id": message_id}
        if is_terminal(event):
            return {"type": event["type"], "message_id": message_id}
        return None

    return shape


def chatkit_shape(thread_id: str) -> Callable[[Event], dict[str, Any] | None]:
    """`{"token", "thread_id"}`; errors `{"error", "thread_id"}`."""

    def shape(event: Event) -> dict[str, Any] | None:
        if event["type"] == "delta":
            return {"token": event["text"], "thread_id": thread_id}
        error = _failure(event)
        if error:
            return {"error": error, "thread_id": thread_id}
        if is_terminal(event):
            return {"type": event["type"], "thread_id": thread_id}
        return None

    return shape


def monitored_shape() -> Callable[[Event], dict[str, Any] | None]:
    """`{"token", "metrics": {total_tokens, elapsed_seconds, throughput_tokens_per_sec,
    ttft_seconds}}`; errors `{"error", "metrics"}`."""
    seen: dict[str, Any] = {"total_tokens": 0, "elapsed_seconds": 0.0, "ttft_seconds": None}

    def metrics() -> dict[str, Any]:
        elapsed = seen["elapsed_seconds"]
        rate = seen["total_tokens"] / elapsed if elapsed > 0 else 0.0
        return {**seen, "throughput_tokens_per_sec": rate}

    def shape(event: Event) -> dict[str, Any] | None:
        if event["type"] == "delta":
            seen["total_tokens"] = event["token_count"]
            seen["elapsed_seconds"] = event.get("elapsed", 0.0)
            if "ttft_seconds" in event:
                seen["ttft_seconds"] = event["ttft_seconds"]
            return {"token": event["text"], "metrics": metrics()}
        if is_terminal(event):
            final = event["metrics"]
            seen["total_tokens"] = final["token_count"]
            seen["elapsed_seconds"] = final["elapsed_seconds"]
            seen["ttft_seconds"] = final["ttft_seconds"]
            error = _failure(event)
            if error:
                return {"error": error, "metrics": metrics()}
            return {"type": event["type"], "metrics": metrics()}
        return None

    return shape


def hybrid_shape(event: Event) -> dict[str, Any] | None:
    """`{"token"}`; errors `{"error"}`."""
    if event["type"] == "delta":
        return {"token": event["text"], "seq": event["seq"]}
    error = _failure(event)
    if error:
        return {"error": error}
    if is_terminal(event):
        return {"type": event["type"]}
    return None
