"""The native wire: a run's events exactly as its log holds them (docs/api.md)."""

from ..events import Event
from .base import Payload, Shape


class Native(Shape):
    def event(self, event: Event) -> Payload:
        return event  # type: ignore[return-value]

    def error(self, message: str) -> Payload:
        return {"run_id": self.stream.run_id, "type": "error", "error": message}


def poll(events: list[Event], *, complete: bool, status: str) -> Payload:
    """`GET /api/runs/<id>/poll`: the events after the client's seq, and whether the run
    has ended (`status` is the reply's stored status)."""
    return {"events": events, "complete": complete, "status": status}
