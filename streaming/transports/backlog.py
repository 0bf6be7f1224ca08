"""Clients that do not keep up: how much a connection holds that its client has not taken.

ASGI has no backpressure: daphne writes whatever an application sends into the
connection's buffer, so a client that stops reading would make its worker hold every
event sent to it, without limit. daphne hands each connection's application a `send`
bound to the connection's protocol, whose Twisted transport knows what it has not written
to the socket yet: a stream checks that before each event, and a client more than
`STREAM_CLIENT_BUFFER_BYTES` behind is cut off (the connection dropped, its buffer freed).
It resumes from the last event it did read, like after any dropped connection (SSE's
`Last-Event-ID`, a WebSocket `subscribe` with `after`). Under a server that is not daphne
the amount is unknown and nothing is cut.

`SendProbe` (outermost in chatproject/asgi.py) puts each connection's `send` where its
streams find it: a context variable, inherited by the tasks the connection starts.
"""

import contextvars
import functools
import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_send: contextvars.ContextVar[Any] = contextvars.ContextVar("asgi_send", default=None)


class SendProbe:
    """ASGI middleware: remembers the connection's `send` for `behind()` and `cut()`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _send.set(send)
        try:
            await self.app(scope, receive, send)
        finally:
            _send.reset(token)


def _transport() -> Any:
    send = _send.get()
    if not isinstance(send, functools.partial) or not send.args:
        return None  # not daphne's `partial(server.handle_reply, protocol)`
    return getattr(send.args[0], "transport", None)


def unsent() -> int | None:
    """Bytes written to this connection that have not reached its socket yet (None if
    this server does not say)."""
    transport = _transport()
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]
    except AttributeError:
        return None


def too_far_behind() -> bool:
    """Whether this connection's client is more than `STREAM_CLIENT_BUFFER_BYTES` behind."""
    held = unsent()
    return held is not None and held > settings.STREAM_CLIENT_BUFFER_BYTES


def cut() -> None:
    """Drop this connection now, with whatever it holds (the client resumes elsewhere)."""
    transport = _transport()
    if transport is not None:
        logger.warning("a client fell %s bytes behind; dropping its connection", unsent())
        transport.abortConnection()
