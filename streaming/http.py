"""HTTP helpers shared by the views: JSON bodies and their validation, the JSON CSRF rule,
and SSE responses that follow a run."""

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from . import drain, runs
from .events import Event
from .formatters import HEARTBEAT, sse_data, sse_preamble
from .models import User
from .producer import RunOptions

logger = logging.getLogger(__name__)

BUFFER_SIZE_RANGE = (1, 1000)
FLUSH_MS_RANGE = (0, 5000)


class BadRequest(Exception):
    """The request cannot be served as sent; the message says why."""


def json_error(message: str, status: int = 400, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object body, or `BadRequest` saying what is wrong with it."""
    try:
        body = json.loads(request.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


async def request_user(request: HttpRequest) -> User | None:
    """The logged-in (or guest) user, or None."""
    user = await request.auser()
    return user if user.is_authenticated else None


def text_problem(text: str) -> str:
    """What keeps non-empty `text` from being a message ("" if nothing): not valid
    Unicode (a lone surrogate, which JSON allows), or over `CHAT_MAX_MESSAGE_BYTES`."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    limit = settings.CHAT_MAX_MESSAGE_BYTES
    return f"is larger than the limit of {limit} bytes" if size > limit else ""


def message_text(body: dict[str, Any]) -> str:
    """The `message` field: a non-empty string within the size limit."""
    text = body.get("message")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'message' is required and must be a non-empty string.")
    problem = text_problem(text)
    if problem:
        raise BadRequest(f"'message' {problem}.")
    return text


CLIENT_ID_LIMIT = 200


def client_id_field(body: dict[str, Any]) -> str | None:
    """The optional `client_id`: the client's id for a message, so that a retry of it
    attaches to the reply the first attempt started instead of starting another."""
    value = body.get("client_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > CLIENT_ID_LIMIT:
        raise BadRequest(f"'client_id' must be a string of 1 to {CLIENT_ID_LIMIT} characters.")
    return value


def _int_field(body: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}.")
    return value


def run_options(body: dict[str, Any], **defaults: Any) -> RunOptions:
    """`buffer_size`, `flush_ms` and `cancel_on_disconnect` from a request body."""
    cancel = body.get("cancel_on_disconnect", defaults.get("cancel_on_disconnect", False))
    if not isinstance(cancel, bool):
        raise BadRequest("'cancel_on_disconnect' must be true or false.")
    buffer_size = _int_field(body, "buffer_size", BUFFER_SIZE_RANGE)
    flush_ms = _int_field(body, "flush_ms", FLUSH_MS_RANGE)
    return RunOptions(
        buffer_size=defaults.get("buffer_size") if buffer_size is None else buffer_size,
        flush_ms=defaults.get("flush_ms") if flush_ms is None else flush_ms,
        cancel_on_disconnect=cancel,
    )


def after_seq(request: HttpRequest) -> int:
    """Where to resume: the `Last-Event-ID` header, else `?after=`, else 0 (the start)."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    value = whole_number(raw)
    if value is None:
        raise BadRequest("'after' (or Last-Event-ID) must be a sequence number of 0 or more.")
    return value


def whole_number(raw: str) -> int | None:
    """`raw` as a number of 0 or more written in ASCII digits, else None."""
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _same_site(request: HttpRequest) -> bool:
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return True
    netloc = urlsplit(source).netloc
    trusted = {urlsplit(o).netloc for o in settings.CSRF_TRUSTED_ORIGINS}
    domain, _ = split_domain_port(netloc)
    return netloc in trusted or bool(domain and validate_host(domain, settings.ALLOWED_HOSTS))


_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


def json_csrf(view: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """Accept a JSON request without a CSRF token when it is same-site by its Origin or
    Referer (a cross-site page cannot send `application/json` without CORS); any other
    request follows Django's CSRF rules."""
    return _csrf_guard(view, json_only=True)


def origin_csrf(view: Callable[..., Awaitable[HttpResponse]]) -> Callable[..., Awaitable[HttpResponse]]:
    """Accept a request without a CSRF token when its Origin or Referer names this site,
    whatever its body's type (for clients that post bare bodies); a request naming neither
    follows Django's CSRF rules."""
    return _csrf_guard(view, json_only=False)


def _csrf_guard(
    view: Callable[..., Awaitable[HttpResponse]], *, json_only: bool
) -> Callable[..., Awaitable[HttpResponse]]:
    @csrf_exempt
    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        safe = request.method in ("GET", "HEAD", "OPTIONS")
        if json_only:
            vouched = request.content_type == "application/json" and _same_site(request)
        else:
            named = request.headers.get("Origin") or request.headers.get("Referer")
            vouched = bool(named) and _same_site(request)
        if not safe and not vouched:
            refused = _csrf.process_view(request, view, args, kwargs)
            if refused is not None:
                return refused
        return await view(request, *args, **kwargs)

    return wrapper


Formatter = Callable[[Event], bytes | None]

# Sent as a resumable stream ends for a restart: EventSource reconnects after this many
# milliseconds (instead of the preamble's 2000) with Last-Event-ID, through the proxy to
# another worker.
RESTART_RETRY = b"retry: 250\n\n"


class Restarting(Exception):
    """Wakes a resumable stream up to end it: the worker is draining."""


class OpenStream:
    """An SSE stream as the drain sees it: a resumable one ends when the worker drains;
    the others (the seed endpoints cannot resume) follow their run to its end."""

    def __init__(self, queue: "asyncio.Queue[Event | BaseException | None]", *, resumable: bool) -> None:
        self.queue = queue
        self.resumable = resumable
        self.restarting = False

    async def restart(self) -> None:
        if self.resumable:
            self.restarting = True
            self.queue.put_nowait(Restarting())


async def follow_run(
    run_id: str, after: int, formatter: Formatter, *, on_error: Callable[[str], bytes],
    resumable: bool = False,
) -> AsyncIterator[bytes]:
    """A run's events as SSE pieces, with a heartbeat comment when it is quiet. If the
    client leaves before the end and the run asked for it, the run is stopped. A
    `resumable` stream (the client resumes with Last-Event-ID) ends when the worker drains."""
    # The stream needs no database: give the request's connection back now, or every open
    # stream would hold one until it ends.
    await sync_to_async(connections.close_all)()
    yield sse_preamble()
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in runs.run_subscribe(run_id, after):
                queue.put_nowait(event)
            queue.put_nowait(None)
        except Exception as exc:
            queue.put_nowait(exc)

    task = asyncio.create_task(pump(), name=f"sse-{run_id}")
    stream = OpenStream(queue, resumable=resumable)
    if drain.track(stream):
        await stream.restart()
    ended = False
    try:
        while True:
            try:
                async with asyncio.timeout(settings.STREAM_SSE_HEARTBEAT_SECONDS):
                    item = await queue.get()
            except TimeoutError:
                yield HEARTBEAT
                continue
            if stream.restarting:
                ended = True  # the client resumes elsewhere: not a disconnect
                yield RESTART_RETRY
                return
            if item is None:
                ended = True
                return
            if isinstance(item, BaseException):
                ended = True
                if isinstance(item, runs.RunNotFound):
                    yield on_error("This reply's event log has expired; reload the conversation.")
                else:
                    logger.error("following run %s failed", run_id, exc_info=item)
                    yield on_error("The stream failed unexpectedly; reconnect to resume.")
                return
            piece = formatter(item)
            if piece is not None:
                yield piece
    finally:
        task.cancel()
        drain.untrack(stream)
        if not ended and await runs.run_cancels_on_disconnect(run_id):
            await asyncio.shield(runs.run_stop(run_id=run_id))


def sse_response(pieces: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(pieces, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def error_piece(payload: dict[str, Any]) -> Callable[[str], bytes]:
    """An `on_error` for `follow_run` that sends `payload` plus the message as `error`."""
    return lambda message: sse_data({**payload, "error": message})


