"""The seed examples' endpoints, with their URLs, request bodies and event shapes.

Each is a thin view: validate, start (or, for a retried `message_id`, find) a run, and
follow it with the shape's formatter. Every event is one `data:` piece, framed with
`id: <seq>` so a client may resume with `Last-Event-ID`.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from . import events, formatters, runs, selectors
from .http import (
    BadRequest,
    error_piece,
    follow_run,
    json_body,
    json_csrf,
    json_error,
    message_text,
    request_user,
    run_options,
    sse_response,
    whole_number,
)
from .logs import event_log
from .models import Message, Thread, User

logger = logging.getLogger(__name__)

MESSAGE_ID_LIMIT = 200


def _message_id(body: dict[str, Any], *, required: bool) -> str | None:
    value = body.get("message_id")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MESSAGE_ID_LIMIT:
        raise BadRequest(f"'message_id' must be a string of 1 to {MESSAGE_ID_LIMIT} characters.")
    return value


class NoThread(Exception):
    """The request names a conversation the user does not have."""


async def _stream(
    request: HttpRequest,
    shape: Callable[[events.Event], dict[str, Any] | None],
    *,
    error_payload: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    thread_for: Callable[[User, dict[str, Any]], Awaitable[Thread | None]] | None = None,
    idempotent: bool = False,
) -> HttpResponse:
    """Validate, start the run (or find the one a retried `message_id` started), follow it."""
    user = await request_user(request)
    if user is None:
        return json_error("Log in to chat.", status=401, **error_payload)
    try:
        body = json_body(request)
        text = message_text(body)
        options = run_options(body, **(defaults or {}))
        message_id = _message_id(body, required=idempotent)
        resume = _resume_point(request, body) if idempotent else 0
        thread = await thread_for(user, body) if thread_for else None
    except BadRequest as exc:
        return json_error(str(exc), **error_payload)
    except NoThread:
        return json_error("No such conversation.", status=404, **error_payload)
    try:
        handle, started = await runs.run_start_once(
            user=user, thread=thread, text=text, options=options,
            client_id=message_id if idempotent else None,
        )
    except runs.RunRefused as exc:
        return json_error(str(exc), status=429, **error_payload)
    run_id = handle.run_id
    if started:
        after = 0
    else:
        after = resume if isinstance(resume, int) else await _seq_for_token_count(run_id, **resume)
    on_error = error_piece(error_payload)
    return sse_response(follow_run(run_id, after, formatters.seed_sse(shape), on_error=on_error))


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
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise BadRequest("'token_count' must be a whole number of 0 or more.")
    return {"token_count": count}


async def _seq_for_token_count(run_id: str, token_count: int) -> int:
    """The seq of the last delta whose running total is at most `token_count`."""
    seq = 0
    for event in await event_log().read(run_id, 0):
        if event["type"] == "delta":
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

    return await _stream(
        request, formatters.seed_message, thread_for=thread_for, error_payload={"type": "error"}
    )


@json_csrf
@require_POST
async def stream_buffered(request: HttpRequest) -> HttpResponse:
    """`{message, buffer_size=5}` → `{"tokens", "count"}`, ending with `"final": true`."""
    return await _stream(
        request, formatters.buffered_shape, defaults={"buffer_size": 5, "flush_ms": 0},
        error_payload={"tokens": ""},
    )


@json_csrf
@require_POST
async def stream_resilient(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token", "token_count", "message_id"}`. A retry with the
    same `message_id` attaches to the same run and replays it (from the start, or after
    `Last-Event-ID` / `token_count`): no second model call."""
    try:
        message_id = _message_id(json_body(request), required=True)
    except BadRequest as exc:
        return json_error(str(exc), type="error")
    return await _stream(
        request, formatters.resilient_shape(message_id or ""), idempotent=True,
        error_payload={"type": "error", "message_id": message_id},
    )


@json_csrf
@require_POST
async def stream_chatkit(request: HttpRequest) -> HttpResponse:
    """`{message, thread_id}` → `{"token", "thread_id"}`; `thread_id` names a conversation."""
    try:
        external = json_body(request).get("thread_id")
    except BadRequest as exc:
        return json_error(str(exc), thread_id=None)
    if not isinstance(external, str) or not external or len(external) > 200:
        return json_error("'thread_id' must be a string of 1 to 200 characters.", thread_id=None)

    async def thread_for(user: User, body: dict[str, Any]) -> Thread | None:
        thread, _ = await Thread.objects.aget_or_create(owner=user, external_id=external)
        return thread

    return await _stream(
        request, formatters.chatkit_shape(external), thread_for=thread_for,
        error_payload={"thread_id": external},
    )


@json_csrf
@require_POST
async def stream_monitored(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token", "metrics": {...}}`; errors `{"error", "metrics"}`."""
    empty = {"total_tokens": 0, "elapsed_seconds": 0.0, "throughput_tokens_per_sec": 0.0, "ttft_seconds": None}
    return await _stream(
        request, formatters.monitored_shape(), error_payload={"metrics": empty}
    )


@json_csrf
@require_POST
async def stream_hybrid(request: HttpRequest) -> HttpResponse:
    """`{message, message_id}` → `{"token"}` events; the tokens stay readable by polling
    `GET /api/message/<message_id>`."""
    return await _stream(request, formatters.hybrid_shape, idempotent=True, error_payload={})


@require_GET
async def message_poll(request: HttpRequest, message_id: str) -> HttpResponse:
    """`GET /api/message/<message_id>?after=<n>` → `{"message_id", "tokens", "complete"}`:
    the reply's token pieces (after the n-th), whether it has ended."""
    user = await request_user(request)
    reply = user and await Message.objects.filter(client_id=runs.client_key(user, message_id)).afirst()
    if not reply:
        return json_error("No such message.", status=404, message_id=message_id)
    after = whole_number(request.GET.get("after", "0"))
    if after is None:
        return json_error("'after' must be a whole number of 0 or more.", message_id=message_id)
    logged = await event_log().read(str(reply.pk), 0)
    if logged:
        tokens = [e["text"] for e in logged if e["type"] == "delta"]
        status = logged[-1]["type"] if events.is_terminal(logged[-1]) else "streaming"
    else:  # past the retention window: the stored reply
        tokens = [reply.content] if reply.content else []
        status = reply.status
    return JsonResponse(
        {
            "message_id": message_id, "tokens": tokens[after:],
            "complete": status != "streaming", "status": status,
        }
    )
