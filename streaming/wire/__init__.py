"""The wire layer: how a run's events look to each kind of client, in one place.

`WIRES` names every shape a stream can be sent in. A new wire shape is a module with a
`Shape` subclass plus one line here; the SSE transport and the WebSocket (`?wire=<name>`)
can then send it. ChatKit's protocol (`wire.chatkit`) is not a payload shape: its server
serializes its own events. Payloads become bytes in `base.encode` and `sse.frame` only.
"""

from . import native, seed
from .base import Payload, Shape, Stream, encode, encode_text

__all__ = ["WIRES", "Payload", "Shape", "Stream", "encode", "encode_text", "shape_for"]

WIRES: dict[str, type[Shape]] = {
    "native": native.Native,
    "message": seed.Message,
    "buffered": seed.Buffered,
    "resilient": seed.Resilient,
    "chatkit": seed.ChatKitSeed,
    "monitored": seed.Monitored,
    "hybrid": seed.Hybrid,
}


def shape_for(name: str, stream: Stream | None = None) -> Shape:
    """A new shape of the wire `name` for one stream (KeyError for an unknown name)."""
    return WIRES[name](stream or Stream())
