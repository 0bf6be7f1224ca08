"""What a wire shape is, and the one place where payloads become bytes.

A `Shape` turns a run's events into the JSON payloads one kind of client reads (or None
for an event that wire does not carry), and says how an error looks there. Transports
frame the payloads (an SSE event, a WebSocket message, a poll answer); `encode` is the
only JSON encoder on the way out.
"""

from dataclasses import dataclass
from typing import Any

from ..events import Event, encode_event

Payload = dict[str, Any]


@dataclass(frozen=True)
class Stream:
    """What a shape may need to know about the stream it formats."""

    run_id: str = ""
    client_id: str = ""  # the client's own name for it (a seed `message_id` or `thread_id`)


class Shape:
    """How one stream's events look on a wire: one instance per stream (a shape may keep
    state, e.g. running metrics)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def event(self, event: Event) -> Payload | None:
        """The payload for `event`, or None to send nothing."""
        raise NotImplementedError

    def error(self, message: str) -> Payload:
        """The payload of an error (a refused request, or a stream that cannot go on)."""
        return {"type": "error", "error": message}


def encode(payload: Any) -> bytes:
    """A payload as compact UTF-8 JSON (an SSE event's data). An event sent unchanged (the
    native wire) goes out as the bytes it was logged as."""
    return encode_event(payload)


def encode_text(payload: Any) -> str:
    """A payload as JSON text (a WebSocket text message)."""
    return encode_event(payload).decode()
