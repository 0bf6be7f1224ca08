"""Pages and HTTP endpoints: the chat page, the native threads/runs API, and the seed's
`/api/stream/message`. Views authorize, start or follow runs, and pick a formatter."""

import logging
from collections.abc import Awaitable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import agent_runtime, errors, exports, metrics, runs, selectors, services
from .csrf import json_csrf
from .inputs import (
    BadRequest,
    after_seq,
    client_id_field,
    export_format,
    json_body,
    json_error,
    message_id_field,
    message_text,
    page_number,
    request_user,
    run_options,
    search_text,
    title_field,
)
from .models import Thread, User
from .serializers import message_json, thread_json
from .transports import poll, quota, sse
from .wire import Stream, shape_for

logger = logging.getLogger(__name__)


@require_GET
async def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@require_GET
async def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


async def chat_page(request: HttpRequest, thread_id: object = None) -> HttpResponse:
    """The chat. A visitor with no identity yet sees an empty one (guests allowed; the page
    asks for its guest before it connects) or is sent to log in."""
    user = await request_user(request)
    if user is None and not settings.CHAT_ALLOW_GUESTS:
        return redirect_to_login(request.get_full_path())
    thread = None
    if thread_id is not None:
        thread = user and await selectors.thread_for_user(user=user, thread_id=thread_id)
        if thread is None:
            raise Http404(errors.NO_THREAD)
    context = {
        "threads": await selectors.thread_list_for_user(user=user) if user else [],
        "thread": thread,
        "messages": await selectors.thread_messages(thread=thread) if thread else [],
        "offline": agent_runtime.model_name() == "offline",
        "model_name": agent_runtime.model_name(),
    }
    return await sync_to_async(render)(request, "chat.html", context)


async def _thread(request: HttpRequest, thread_id: object) -> tuple[User | None, Thread | None]:
    """The requester, and the thread if they may see it."""
    user = await request_user(request)
    return user, user and await selectors.thread_for_user(user=user, thread_id=thread_id)


# Threads.


@json_csrf
@require_POST
async def session(request: HttpRequest) -> HttpResponse:
    """`POST /api/session`: who the requester is; a visitor gets their guest here (the chat
    page asks before it connects, so that its WebSocket carries the session)."""
    user = await request_user(request)
    if user is None:
        return json_error(errors.LOGIN_REQUIRED, status=401)
    return JsonResponse({"user": {"username": user.username, "guest": user.is_guest}})


@json_csrf
@require_http_methods(["GET", "POST"])
async def threads(request: HttpRequest) -> HttpResponse:
    """GET `?q=&page=`: a page of the requester's conversations (those matching `q`, best
    first), and the next page's number (null on the last). POST `{title?}`: a new one."""
    if request.method == "GET":
        try:
            text, page = search_text(request), page_number(request)
        except BadRequest as exc:
            metrics.refused("bad_request")
            return json_error(str(exc))
    user = await request_user(request)
    if user is None and request.method == "GET" and settings.CHAT_ALLOW_GUESTS:
        # A visitor without a guest yet has none.
        return JsonResponse({"threads": [], "next_page": None})
    if user is None:
        return json_error(errors.LOGIN_REQUIRED, status=401)
    if request.method == "GET":
        found = await selectors.thread_search(user=user, text=text, page=page)
        return JsonResponse(
            {"threads": [thread_json(t) for t in found.threads], "next_page": found.next_page}
        )
    try:
        title = title_field(json_body(request), required=False)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    try:
        thread = await sync_to_async(services.thread_create)(owner=user, title=title)
    except services.LimitReached as exc:
        metrics.refused("rate_limited")
        return json_error(str(exc), status=429)
    return JsonResponse(thread_json(thread), status=201)


@json_csrf
@require_http_methods(["GET", "PATCH", "DELETE"])
async def thread_detail(request: HttpRequest, thread_id: object) -> HttpResponse:
    _, thread = await _thread(request, thread_id)
    if not thread:
        return json_error(errors.NO_THREAD, status=404)
    if request.method == "DELETE":
        await runs.thread_delete(thread=thread)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        try:
            title = title_field(json_body(request), required=True)
        except BadRequest as exc:
            metrics.refused("bad_request")
            return json_error(str(exc))
        thread = await sync_to_async(services.thread_rename)(thread=thread, title=title)
    return JsonResponse(thread_json(thread))


@json_csrf
@require_http_methods(["GET", "POST"])
async def thread_messages(request: HttpRequest, thread_id: object) -> HttpResponse:
    """GET: the conversation as shown (`?branches=all`: every message of every branch).
    POST `{message, edit_of?, buffer_size?, flush_ms?, client_id?}`: start a run (201), or,
    for a `client_id` that started one already, answer it (200). With `edit_of` (a message
    of the user's in the thread) the message is a new version of that one."""
    user, thread = await _thread(request, thread_id)
    if not thread or not user:
        return json_error(errors.NO_THREAD, status=404)
    if request.method == "GET":
        every = request.GET.get("branches") == "all"
        found = await (selectors.thread_all_messages if every else selectors.thread_messages)(thread=thread)
        return JsonResponse({"messages": [message_json(m) for m in found]})
    try:
        body = json_body(request)
        text, options, client_id = message_text(body), run_options(body), client_id_field(body)
        edit_id = message_id_field(body, "edit_of", required=False)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    edit_of = None
    if edit_id is not None:
        edit_of = await selectors.message_in_thread(thread=thread, message_id=edit_id)
        if edit_of is None:
            return json_error("'edit_of' must be a message of this conversation.")
    return await _started(
        runs.run_start_once(
            user=user, thread=thread, text=text, options=options, client_id=client_id, edit_of=edit_of
        )
    )


async def _started(starting: Awaitable[tuple[runs.RunHandle, bool]]) -> HttpResponse:
    """The answer to a request that starts a run: 201 with its handle (200 for a retry)."""
    try:
        handle, started = await starting
    except runs.RunRefused as exc:
        return json_error(str(exc), status=429)
    except runs.NotAllowed as exc:
        return json_error(str(exc), status=409 if exc.conflict else 400)
    return JsonResponse(
        {
            "run_id": handle.run_id,
            "message_id": handle.run_id,
            "user_message_id": handle.user_message_id,
            "thread_id": handle.thread_id,
            "events_url": f"/api/runs/{handle.run_id}/events",
        },
        status=201 if started else 200,
    )


@json_csrf
@require_POST
async def thread_branch(request: HttpRequest, thread_id: object) -> HttpResponse:
    """`POST {message_id}`: show the branch through that message (from it on, each later
    turn's most recent version); answers the conversation as now shown."""
    _, thread = await _thread(request, thread_id)
    if not thread:
        return json_error(errors.NO_THREAD, status=404)
    try:
        message_id = message_id_field(json_body(request), "message_id", required=True)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    if await sync_to_async(services.branch_show)(thread=thread, message_id=message_id) is None:
        return json_error("'message_id' must be a message of this conversation.")
    found = await selectors.thread_messages(thread=thread)
    return JsonResponse({"messages": [message_json(m) for m in found]})


@require_GET
async def thread_export(request: HttpRequest, thread_id: object) -> HttpResponse:
    """`?format=markdown|json`: the conversation as shown, as a file to download."""
    _, thread = await _thread(request, thread_id)
    if not thread:
        return json_error(errors.NO_THREAD, status=404)
    try:
        kind = export_format(request)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    found = await selectors.thread_messages(thread=thread)
    if kind == "json":
        document = exports.document(thread, found, exported_at=timezone.now())
        response: HttpResponse = JsonResponse(
            document, json_dumps_params={"indent": 2, "ensure_ascii": False}
        )
    else:
        response = HttpResponse(exports.markdown(thread, found), content_type=exports.CONTENT_TYPES[kind])
    response["Content-Disposition"] = content_disposition_header(True, exports.filename(thread, kind))
    return response


# Runs.


async def _run(request: HttpRequest, run_id: object) -> str | None:
    found = await _run_and_user(request, run_id)
    return found[0] if found else None


async def _run_and_user(request: HttpRequest, run_id: object) -> tuple[str, User] | None:
    user = await request_user(request)
    reply = user and await runs.run_for_user(user=user, run_id=run_id)
    return (str(reply.pk), user) if reply and user else None


@require_GET
async def run_events(request: HttpRequest, run_id: object) -> HttpResponse:
    """SSE: the run's events after `Last-Event-ID` / `?after=`, ending after the last."""
    run_and_user = await _run_and_user(request, run_id)
    if run_and_user is None:
        return json_error(errors.NO_RUN, status=404)
    found, user = run_and_user
    if refusal := quota.refusal(user.pk):
        metrics.refused("rate_limited")
        return json_error(refusal, status=429)
    try:
        after = after_seq(request)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    if not await runs.run_exists(found):
        return json_error(errors.LOG_EXPIRED_READ_THREAD, status=410)
    shape = shape_for("native", Stream(run_id=found))
    return sse.response(found, after, shape, resumable=True, user_id=user.pk)


@json_csrf
@require_POST
async def run_stop(request: HttpRequest, run_id: object) -> HttpResponse:
    found = await _run(request, run_id)
    if found is None:
        return json_error(errors.NO_RUN, status=404)
    await runs.run_stop(run_id=found)
    return JsonResponse({"run_id": found, "stopping": True}, status=202)


@json_csrf
@require_POST
async def run_regenerate(request: HttpRequest, run_id: object) -> HttpResponse:
    """`POST {client_id?, buffer_size?, flush_ms?}`: a new version of a finished reply, from
    the same question and history (201, like starting a run), shown in its place."""
    user = await request_user(request)
    reply = user and await selectors.reply_to_regenerate(user=user, run_id=run_id)
    if reply is None or user is None:
        return json_error(errors.NO_RUN, status=404)
    try:
        body = json_body(request)
        options, client_id = run_options(body), client_id_field(body)
    except BadRequest as exc:
        metrics.refused("bad_request")
        return json_error(str(exc))
    return await _started(
        runs.run_start_once(
            user=user, thread=reply.thread, text="", options=options, client_id=client_id, regenerate=reply
        )
    )


POLL_WAIT_LIMIT = 25.0


@require_GET
async def run_poll(request: HttpRequest, run_id: object) -> HttpResponse:
    """`?after=<seq>&wait=<seconds>` → `{"events", "complete", "status"}`. With `wait`
    (at most 25 s) the answer is held until there is something after `after`."""
    found = await _run(request, run_id)
    if found is None:
        return json_error(errors.NO_RUN, status=404)
    try:
        after = after_seq(request)
        wait = float(request.GET.get("wait", "0"))
    except (BadRequest, ValueError):
        metrics.refused("bad_request")
        return json_error("'after' must be a sequence number and 'wait' a number of seconds.")
    if not 0 <= wait <= POLL_WAIT_LIMIT:
        metrics.refused("bad_request")
        return json_error(f"'wait' must be from 0 to {POLL_WAIT_LIMIT:g} seconds.")
    answer = await poll.poll(found, after, wait=wait)
    if answer is None:
        return json_error(errors.NO_RUN, status=404)
    return JsonResponse(answer)
