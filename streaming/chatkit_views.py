"""ChatKit: session tokens for OpenAI-hosted ChatKit workflows, the self-hosted ChatKit
endpoint, and the `/chatkit/` page that embeds ChatKit's web component.

The ChatKit `user` of a session is always the requester (logged in or guest), never a
value from the request body.
"""

import hashlib
import json
import logging
import time
from typing import Any

import openai
from asgiref.sync import sync_to_async
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ChatKitReq, UserMessageInput
from csp.decorators import csp_update
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.core import is_ratelimited
from pydantic import TypeAdapter, ValidationError

from . import errors
from .chatkit_store import ChatKitContext
from .csrf import json_csrf, origin_csrf
from .inputs import BadRequest, json_body, json_error, message_problem, request_user
from .models import User
from .transports.chatkit import chat_server
from .wire import sse

logger = logging.getLogger(__name__)

CHATKIT_SCRIPT = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js"
UPSTREAM_TIMEOUT = 15.0  # seconds for one call to OpenAI's ChatKit sessions API
_requests: TypeAdapter[Any] = TypeAdapter(ChatKitReq)


def chatkit_user(user: User) -> str:
    """The ChatKit `user` of a session: this site's user id."""
    return str(user.pk)


def backend() -> str:
    """Which ChatKit the page embeds: `hosted` (an OpenAI workflow, through session
    tokens), `self` (this server's `/chatkit` endpoint) or `off`."""
    choice = settings.CHATKIT_BACKEND
    if choice == "auto":
        return "hosted" if settings.CHATKIT_WORKFLOW_ID else "self"
    return choice


def _hosted_problem() -> str:
    missing = [
        name for name, value in (
            ("CHATKIT_WORKFLOW_ID", settings.CHATKIT_WORKFLOW_ID),
            ("OPENAI_API_KEY", settings.OPENAI_API_KEY),
        ) if not value
    ]
    if missing:
        return f"ChatKit sessions are not configured: set {' and '.join(missing)}."
    return ""


async def _limited(request: HttpRequest, user: User) -> bool:
    return await sync_to_async(is_ratelimited)(
        request, group="chatkit-sessions", key=lambda group, request: str(user.pk),
        rate=settings.CHATKIT_SESSIONS_RATE, increment=True,
    )


def _secret_key(secret: str) -> str:
    return "chatkit-secret:" + hashlib.sha256(secret.encode()).hexdigest()


def _sessions_client() -> openai.AsyncOpenAI:
    """An OpenAI client for session requests, which the caller closes: they are few, and
    need not share the model streams' connections (`agent_runtime.openai_client`), nor
    outlive an event loop that only ran this request."""
    return openai.AsyncOpenAI(
        api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL,
        timeout=UPSTREAM_TIMEOUT, max_retries=0,
    )


async def _mint(user: User) -> dict[str, Any]:
    """A new ChatKit session for `user`; raises `openai.OpenAIError` when OpenAI fails."""
    async with _sessions_client() as client:
        session = await client.beta.chatkit.sessions.create(
            user=chatkit_user(user), workflow={"id": settings.CHATKIT_WORKFLOW_ID}
        )
    ttl = max(int(session.expires_at - time.time()), 1)
    await cache.aset(_secret_key(session.client_secret), {"user": user.pk, "session": session.id}, ttl)
    return {"client_secret": session.client_secret, "expires_at": session.expires_at}


def _upstream_error(exc: openai.OpenAIError) -> HttpResponse:
    if isinstance(exc, openai.APIStatusError):
        detail = f"OpenAI answered {exc.status_code}"
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message")
        if isinstance(message, str) and message:
            detail += f": {message}"
    elif isinstance(exc, openai.APITimeoutError):
        detail = "OpenAI did not answer in time"
    elif isinstance(exc, openai.APIConnectionError):
        detail = "OpenAI could not be reached"
    else:
        detail = str(exc)
    logger.warning("ChatKit session request failed: %s", detail)
    return json_error(f"The ChatKit session could not be created ({detail}).", status=502)


async def _session_response(request: HttpRequest, user: User, *, replacing: str | None) -> HttpResponse:
    problem = _hosted_problem()
    if problem:  # expected on a site without hosted ChatKit: one warning, not an error
        logger.warning("ChatKit session refused (%s): %s", request.path, problem)
        response = json_error(problem, status=503)
        response._has_been_logged = True  # type: ignore[attr-defined]  # Django's log_response
        return response
    if await _limited(request, user):
        response = json_error("Too many ChatKit sessions requested; try again in a minute.", status=429)
        response["Retry-After"] = "60"
        return response
    try:
        minted = await _mint(user)
    except openai.OpenAIError as exc:
        return _upstream_error(exc)
    if replacing:
        await _cancel_replaced(user, replacing)
    return HttpResponse(
        json.dumps(minted), content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _cancel_replaced(user: User, secret: str) -> None:
    """End the session a refresh replaces, if it is the requester's own."""
    issued = await cache.aget(_secret_key(secret))
    if not issued or issued.get("user") != user.pk:
        return
    await cache.adelete(_secret_key(secret))
    try:
        async with _sessions_client() as client:
            await client.beta.chatkit.sessions.cancel(issued["session"])
    except openai.OpenAIError:
        logger.warning("could not cancel replaced ChatKit session %s", issued["session"], exc_info=True)


@origin_csrf
@require_POST
async def chatkit_session(request: HttpRequest) -> HttpResponse:
    """`POST /api/chatkit/session` → `{"client_secret", "expires_at"}` for the requester.
    A `user_id` in the body is ignored: the session's user is whoever is logged in."""
    user = await request_user(request)
    if user is None:
        return json_error(errors.LOGIN_REQUIRED, status=401)
    return await _session_response(request, user, replacing=None)


@origin_csrf
@require_POST
async def chatkit_refresh(request: HttpRequest) -> HttpResponse:
    """`POST /api/chatkit/refresh` `{token}` → a fresh secret for the requester; the session
    of `token` is cancelled when it is the requester's."""
    user = await request_user(request)
    if user is None:
        return json_error(errors.LOGIN_REQUIRED, status=401)
    try:
        token = json_body(request).get("token")
    except BadRequest as exc:
        return json_error(str(exc))
    if not isinstance(token, str) or not token or len(token) > 1000:
        return json_error("'token' must be the client secret to refresh.")
    return await _session_response(request, user, replacing=token)


def _thread_named(parsed: Any) -> str | None:
    params = getattr(parsed, "params", None)
    value = getattr(params, "thread_id", None)
    return value if isinstance(value, str) else None


@json_csrf
@require_POST
async def chatkit_api(request: HttpRequest) -> HttpResponse:
    """`POST /chatkit`: the ChatKit protocol (threads, items, streamed replies) on this
    project's threads and runs, for the requester's own threads only."""
    user = await request_user(request)
    if user is None:
        return json_error(errors.LOGIN_REQUIRED, status=401)
    if backend() == "off":
        return json_error("The ChatKit endpoint is turned off (CHATKIT_BACKEND=off).", status=404)
    try:
        parsed = _requests.validate_json(request.body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        detail = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "invalid"))
        return json_error(f"Not a ChatKit request ({detail}).")
    unsupported = _unsupported(parsed)
    if unsupported:
        return json_error(unsupported)
    context = ChatKitContext(user=user)
    thread_id = _thread_named(parsed)
    try:
        if thread_id is not None:  # checked now: a stream cannot answer 404 once it has begun
            await chat_server.store.load_thread(thread_id, context)
    except NotFoundError:
        return json_error(errors.NO_THREAD, status=404)
    try:
        result = await chat_server.process(request.body, context)
    except NotFoundError as exc:
        return json_error(str(exc) or "Not found.", status=404)
    except NotImplementedError as exc:
        return json_error(str(exc), status=400)
    if isinstance(result, StreamingResult):
        return StreamingHttpResponse(result, content_type=sse.CONTENT_TYPE, headers=sse.HEADERS)
    return HttpResponse(result.json, content_type="application/json")


def _unsupported(parsed: Any) -> str:
    """Why this server will not serve the request (what it does not offer, or a message
    it would refuse), or "": said before anything is stored or streamed."""
    kind = getattr(parsed, "type", "")
    given = getattr(getattr(parsed, "params", None), "input", None)
    if kind.startswith("attachments.") or getattr(given, "attachments", None):
        return errors.NO_ATTACHMENTS
    if kind == "input.transcribe":
        return "Dictation is not supported."
    if isinstance(given, UserMessageInput):
        return message_problem("".join(getattr(part, "text", "") for part in given.content))
    return ""


@require_GET
@csp_update({
    "script-src": ["https://cdn.platform.openai.com"],
    "frame-src": ["https://cdn.platform.openai.com"],
    "connect-src": ["https://api.openai.com", "https://cdn.platform.openai.com"],
})
def chatkit_page(request: HttpRequest) -> HttpResponse:
    """`/chatkit/`: ChatKit's web component, on a hosted workflow or on this server. A
    visitor gets a guest with their first request from it (guests allowed), or logs in."""
    if not request.user.is_authenticated and not settings.CHAT_ALLOW_GUESTS:
        return redirect_to_login(request.get_full_path())
    mode = backend()
    problem = _hosted_problem() if mode == "hosted" else ""
    config = {
        "mode": "off" if problem else mode,
        "script": CHATKIT_SCRIPT,
        "sessionUrl": "/api/chatkit/session",
        "refreshUrl": "/api/chatkit/refresh",
        "apiUrl": "/chatkit",
        "domainKey": settings.CHATKIT_DOMAIN_KEY,
    }
    return render(request, "chatkit.html", {"config": config, "problem": problem, "mode": mode})
