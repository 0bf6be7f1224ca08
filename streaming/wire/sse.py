"""Server-Sent Events framing, written once: every SSE stream of the project (native,
seed shapes, ChatKit) is made of these pieces. Each piece is one whole SSE event (or
comment), so a client never sees an event split across writes."""

from typing import Any

from .base import encode

RETRY_MS = 2000

# Tells EventSource how long to wait before reconnecting.
PREAMBLE = b"retry: %d\n\n" % RETRY_MS
# A comment that keeps proxies and clients from timing a quiet stream out.
HEARTBEAT = b": ping\n\n"
# Sent as a resumable stream ends for a restart: EventSource reconnects after 250 ms (not
# the preamble's 2000) with Last-Event-ID, through the proxy to another worker.
RESTART_RETRY = b"retry: 250\n\n"
CONTENT_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def frame(data: bytes, *, seq: int | None = None) -> bytes:
    """One SSE event: `id: <seq>` (for `Last-Event-ID` resumes) and one `data:` line."""
    if seq is None:
        return b"data: " + data + b"\n\n"
    return b"id: %d\ndata: %s\n\n" % (seq, data)


def data(payload: Any, *, seq: int | None = None) -> bytes:
    """`payload` as JSON in one SSE event."""
    return frame(encode(payload), seq=seq)
