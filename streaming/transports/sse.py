"""The SSE transport: a run's events, in one wire shape, as a streaming HTTP response.

Every event goes out framed with `id: <seq>` so that a client resumes with
`Last-Event-ID`; a quiet stream gets a heartbeat comment; a stream that cannot go on
ends with the shape's error payload.
"""

from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse

from .. import metrics
from ..wire import Shape, sse
from . import backlog, quota
from .follow import Ending, follow, release_db


async def stream(run_id: str, after: int, shape: Shape, *, resumable: bool) -> AsyncIterator[bytes]:
    """The SSE pieces of a run's events after `after`. A `resumable` stream (its client
    resumes with Last-Event-ID) ends when the worker drains, telling EventSource to
    reconnect soon; the others follow their run to its end. A client that falls too far
    behind is cut off (`backlog`), whatever the stream."""
    await release_db()
    yield sse.PREAMBLE
    quiet = settings.STREAM_SSE_HEARTBEAT_SECONDS
    delivery = metrics.Delivery("sse")
    async for item in follow(run_id, after, resumable=resumable, quiet=quiet):
        if item is None:
            yield sse.HEARTBEAT
        elif isinstance(item, Ending):
            yield sse.RESTART_RETRY if item.reason == "restart" else sse.data(shape.error(item.message))
        elif (payload := shape.event(item)) is not None:
            if backlog.too_far_behind():
                backlog.cut()
                return
            delivery.sent(item)
            yield sse.data(payload, seq=item["seq"])


class _Response(StreamingHttpResponse):
    """An SSE response that holds one of its user's streams (`quota`) until it closes
    (Django closes every response, streamed or not)."""

    def __init__(self, *args: object, user_id: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.user_id = user_id
        quota.take(user_id)  # checked (`quota.refusal`) before anything was started

    def close(self) -> None:
        try:
            if self.user_id is not None:
                quota.give_back(self.user_id)
                self.user_id = None
        finally:
            super().close()


def response(
    run_id: str, after: int, shape: Shape, *, resumable: bool, user_id: object
) -> StreamingHttpResponse:
    """The SSE response; its caller has checked `quota.refusal(user_id)`."""
    return _Response(
        stream(run_id, after, shape, resumable=resumable),
        content_type=sse.CONTENT_TYPE, headers=sse.HEADERS, user_id=user_id,
    )
