"""Pages and HTTP endpoints of the chat."""

import logging
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from . import agent_runtime, selectors, services
from .http import BadRequest, json_body, json_error, message_text, sse_data
from .models import Thread
from .replies import reply_stream

logger = logging.getLogger(__name__)


@require_GET
async def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@login_required
async def chat_page(request: HttpRequest, thread_id: object = None) -> HttpResponse:
    user = await request.auser()
    thread = None
    if thread_id is not None:
        thread = await selectors.thread_for_user(user=user, thread_id=thread_id)
        if thread is None:
            raise Http404("No such conversation.")
    context = {
        "threads": await selectors.thread_list_for_user(user=user),
        "thread": thread,
        "messages": await selectors.thread_messages(thread=thread) if thread else [],
        "offline": agent_runtime.model_name() == "offline",
        "model_name": agent_runtime.model_name(),
    }
    return await sync_to_async(render)(request, "chat.html", context)


@require_POST
async def stream_message(request: HttpRequest) -> HttpResponse:
    """`POST /api/stream/message {message, thread_id?}`: the reply as SSE token events."""
    user = await request.auser()
    if not user.is_authenticated:
        return json_error("Log in to chat.", status=401)
    try:
        body = json_body(request)
        text = message_text(body)
    except BadRequest as exc:
        return json_error(str(exc))
    thread_id = body.get("thread_id")
    if thread_id:
        thread = await selectors.thread_for_user(user=user, thread_id=thread_id)
        if thread is None or thread.owner_id != user.pk:
            return json_error("No such conversation.", status=404)
    else:
        thread = await sync_to_async(services.thread_create)(owner=user)
    return sse_response(_reply_events(thread, text))


async def _reply_events(thread: Thread, text: str) -> AsyncIterator[bytes]:
    try:
        async for event in reply_stream(thread=thread, text=text):
            yield sse_data(event)
    except Exception:
        logger.exception("reply stream failed in thread %s", thread.pk)
        yield sse_data({"type": "error", "error": "The reply failed unexpectedly."})


def sse_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
