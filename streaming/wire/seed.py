"""The seed examples' wire shapes (docs/api.md, "Seed-compatible endpoints").

Each shape carries every field the examples' clients read, plus native fields (`seq`,
`run_id`) where those clients ignore them. Errors use each example's own error shape.
"""

from typing import Any

from ..events import STEP_TYPES, Event, failure_text, is_delta, is_terminal
from .base import Payload, Shape


class Message(Shape):
    """`/api/stream/message` and the WebSocket's default wire: `{"type": "token", "token"}`
    events, `{"type": "error", "error", "status"}` for failures; other events keep their
    native type, but the agent's reasoning and tool events are not sent (the seed's shape
    is text only)."""

    def event(self, event: Event) -> Payload | None:
        if event["type"] in STEP_TYPES:
            return None
        if is_delta(event):
            return {"type": "token", "token": event["text"], "run_id": event["run_id"], "seq": event["seq"]}
        error = failure_text(event)
        if error is not None:
            return {**event, "type": "error", "error": error, "status": event["type"]}
        return dict(event)


class Buffered(Shape):
    """`{"tokens", "count"}`; the stream always ends with `"final": true`."""

    def event(self, event: Event) -> Payload | None:
        if is_delta(event):
            return {"tokens": event["text"], "count": event["tokens"], "seq": event["seq"]}
        if not is_terminal(event):
            return None
        payload: Payload = {"tokens": "", "count": 0, "final": True, "status": event["type"]}
        error = failure_text(event)
        if error:
            payload["error"] = error
        return payload

    def error(self, message: str) -> Payload:
        return {"tokens": "", "error": message}


class Resilient(Shape):
    """`{"token", "token_count", "message_id"}`; errors `{"type": "error", "error", "message_id"}`."""

    def event(self, event: Event) -> Payload | None:
        message_id = self.stream.client_id
        if is_delta(event):
            return {
                "token": event["text"], "token_count": event["token_count"],
                "message_id": message_id, "seq": event["seq"],
            }
        error = failure_text(event)
        if error:
            return self.error(error)
        if is_terminal(event):
            return {"type": event["type"], "message_id": message_id}
        return None

    def error(self, message: str) -> Payload:
        payload: Payload = {"type": "error", "error": message}
        if self.stream.client_id:
            payload["message_id"] = self.stream.client_id
        return payload


class ChatKitSeed(Shape):
    """`/api/stream/chatkit`: `{"token", "thread_id"}`; errors `{"error", "thread_id"}`."""

    def event(self, event: Event) -> Payload | None:
        if is_delta(event):
            return {"token": event["text"], "thread_id": self.stream.client_id}
        error = failure_text(event)
        if error:
            return self.error(error)
        if is_terminal(event):
            return {"type": event["type"], "thread_id": self.stream.client_id}
        return None

    def error(self, message: str) -> Payload:
        return {"error": message, "thread_id": self.stream.client_id or None}


class Monitored(Shape):
    """`{"token", "metrics": {total_tokens, elapsed_seconds, throughput_tokens_per_sec,
    ttft_seconds}}`; errors `{"error", "metrics"}`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.total_tokens = 0
        self.elapsed_seconds = 0.0
        self.ttft_seconds: float | None = None

    def metrics(self) -> Payload:
        elapsed = self.elapsed_seconds
        return {
            "total_tokens": self.total_tokens,
            "elapsed_seconds": elapsed,
            "ttft_seconds": self.ttft_seconds,
            "throughput_tokens_per_sec": self.total_tokens / elapsed if elapsed > 0 else 0.0,
        }

    def event(self, event: Event) -> Payload | None:
        if is_delta(event):
            self.total_tokens = event["token_count"]
            self.elapsed_seconds = event["elapsed"]
            if "ttft_seconds" in event:
                self.ttft_seconds = event["ttft_seconds"]
            return {"token": event["text"], "metrics": self.metrics()}
        if not is_terminal(event):
            return None
        final = event["metrics"]
        self.total_tokens = final["token_count"]
        self.elapsed_seconds = final["duration_seconds"]
        self.ttft_seconds = final["ttft_seconds"]
        error = failure_text(event)
        if error:
            return self.error(error)
        return {"type": event["type"], "metrics": self.metrics()}

    def error(self, message: str) -> Payload:
        return {"error": message, "metrics": self.metrics()}


class Hybrid(Shape):
    """`{"token"}`; errors `{"error"}` (the text stays readable by polling `message_poll`)."""

    def event(self, event: Event) -> Payload | None:
        if is_delta(event):
            return {"token": event["text"], "seq": event["seq"]}
        error = failure_text(event)
        if error:
            return self.error(error)
        if is_terminal(event):
            return {"type": event["type"]}
        return None

    def error(self, message: str) -> Payload:
        return {"error": message}


def message_poll(message_id: str, *, tokens: list[str], status: str) -> Payload:
    """`GET /api/message/<message_id>`: the reply's token pieces, whether it has ended."""
    return {
        "message_id": message_id, "tokens": tokens,
        "complete": status != "streaming", "status": status,
    }
