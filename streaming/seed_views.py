"""The seed examples' endpoints, with their URLs, request bodies and event shapes.

Each is a thin view: check the request, start (or, for a retried `message_id`, find) a
run, and stream it over SSE in the endpoint's wire shape (streaming/wire/seed.py). Every
event is framed with `id: <seq>` so a client may resume with `Last-Event-ID`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from . import errors, metrics, runs, selectors, services
from .csrf import json_csrf
from .events import is_delta
from .inputs import (
    MESSAGE_ID_LIMIT,
    SEQ_MAX,
    BadRequest,
    json_body,
    message_text,
    request_user,
    run_options,
    short_string,
    whole_number,
)
from .models import Thread, User
from .transports import poll, quota, sse
from .wire import Shape, Stream, shape_for

logger = logging.getLogger(__name__)


class NoThread(Exception):
    """The request names a conversation the user does not have."""


def _refusal(shape: Shape, message: str, status: int = 400) -> JsonResponse:
    if status == 400:
        metrics.refused("bad_request")
    return JsonResponse(shape.error(message), status=status)


async def _stream(
    request: HttpRequest,
    wire: str,
    *,
    client_id: str = "",
    defaults: dict[str, Any] | None = None,
    thread_for: Callable[[User, dict[str, Any]], Awaitable[Thread | None]] | None = None,
    idempotent: bool = False,
) -> HttpResponse:
    """Check, start the run (or find the one a retried `message_id` started), stream it."""
    shape = shape_for(wire, Stream(client_id=client_id))
    user = await request_user(request)
    if user is None:
        return _refusal(shape, errors.LOGIN_REQUIRED, status=401)
    if refusal := quota.refusal(user.pk):  # before a run is started that nobody would read
        return _refusal(shape, refusal, status=429)
    try:
        body = json_body(request)
        text = message_text(body)
        options = run_options(body, **(defaults or {}))
        message_id = short_string(body, "message_id", MESSAGE_ID_LIMIT, required=idempotent)
        resume = _resume_point(request, body) if idempotent else 0
        thread = await thread_for(user, body) if thread_for else None
    except BadRequest as exc:
        return _refusal(shape, str(exc))
    except NoThread:
        return _refusal(shape, errors.NO_THREAD, status=404)
    try:
        handle, started = await runs.run_start_once(
            user=user, thread=thread, text=text, options=options,
            client_id=message_id if idempotent else None,
        )
    except runs.RunRefused as exc:
        return _refusal(shape, str(exc), status=429)
    run_id = handle.run_id
    if started:
        after = 0
    else:
        after = resume if isinstance(resume, int) else await _seq_for_token_count(run_id, **resume)
    shape.stream = Stream(run_id=run_id, client_id=client_id)
    return sse.response(run_id, after, shape, resumable=False, user_id=user.pk)


def _resume_point(request: HttpRequest, body: dict[str, Any]) -> int | dict[str, int]:
    """A retry resumes after `Last-Event-ID` (a seq) or after `token_count` tokens."""
    header = request.headers.get("Last-Event-ID")
    if header:
        seq = whole_number(header)
        if seq is None:
            raise BadRequest("Last-Event-ID must be a sequence number.")
        return seq
    count = body.get("token_count")
    if count is None:
        return 0
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= SEQ_MAX:
        raise BadRequest(f"'token_count' must be a whole number from 0 to {SEQ_MAX}.")
    return {"token_count": count}


async def _seq_for_token_count(run_id: str, token_count: int) -> int:
    """The seq of the last delta whose running total is at most `token_count`."""
    seq = 0
    for event in await runs.run_events(run_id, 0):
        if is_delta(event):
            if event["token_count"] > token_count:
                break
            seq = event["seq"]
        elif event["type"] == "started":
            seq = event["seq"]
    return seq


@json_csrf
@require_POST
async def stream_message(request: HttpRequest) -> HttpResponse:
    """`{message, thread_id?}` → `{"type": "token", "token"}` events."""

    async def thread_for(user: User, body: dict[str, Any]) -> Thread | None:
        thread_id = body.get("thread_id")
        if not thread_id:
            return None
        thread = await selectors.thread_for_user(user=user, thread_id=thread_id)
        if thread is None:
            raise NoThread
        return thread

    return await _stream(request, "message", thread_for=thread_for)


@json_csrf
@require_POST
async def stream_buffered(request: HttpRequest) -> HttpResponse:
    """`{message, buffer_size=5}` → `{"tokens", "count"}`, ending with `"final": true`."""
    return await _stream(request, "buffered", defaults={"buffer_size": 5, "flush_ms": 0})


@json_csrf
@require_POST
async def stream_resilient(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token", "token_count", "message_id"}`. A retry with the
    same `message_id` attaches to the same run and replays it (from the start, or after
    `Last-Event-ID` / `token_count`): no second model call."""
    try:
        message_id = short_string(json_body(request), "message_id", MESSAGE_ID_LIMIT, required=True)
    except BadRequest as exc:
        return _refusal(shape_for("resilient"), str(exc))
    return await _stream(request, "resilient", client_id=message_id or "", idempotent=True)


@json_csrf
@require_POST
async def stream_chatkit(request: HttpRequest) -> HttpResponse:
    """`{message, thread_id}` → `{"token", "thread_id"}`; `thread_id` names a conversation."""
    try:
        external = short_string(json_body(request), "thread_id", 200, required=True) or ""
    except BadRequest as exc:
        return _refusal(shape_for("chatkit"), str(exc))

    async def thread_for(user: User, body: dict[str, Any]) -> Thread | None:
        return await sync_to_async(services.thread_for_external_id)(owner=user, external_id=external)

    return await _stream(request, "chatkit", client_id=external, thread_for=thread_for)


@json_csrf
@require_POST
async def stream_monitored(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token", "metrics": {...}}`; errors `{"error", "metrics"}`."""
    return await _stream(request, "monitored")


@json_csrf
@require_POST
async def stream_hybrid(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token"}` events; the tokens stay readable by polling
    `GET /api/message/<message_id>`."""
    return await _stream(request, "hybrid", idempotent=True)


@require_GET
async def message_poll(request: HttpRequest, message_id: str) -> HttpResponse:
    """`GET /api/message/<message_id>?after=<n>` → `{"message_id", "tokens", "complete"}`:
    the reply's token pieces (after the n-th), whether it has ended."""
    user = await request_user(request)
    reply = user and await selectors.reply_by_client_key(key=runs.client_key(user, message_id))
    if not reply:
        return JsonResponse({"error": errors.NO_MESSAGE, "message_id": message_id}, status=404)
    after = whole_number(request.GET.get("after", "0"))
    if after is None:
        metrics.refused("bad_request")
        return JsonResponse(
            {"error": f"'after' must be a whole number from 0 to {SEQ_MAX}.", "message_id": message_id},
            status=400,
        )
    return JsonResponse(await poll.message_poll(reply, message_id, after))
