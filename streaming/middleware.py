"""Django's own middleware, run on the event loop.

Under ASGI, Django runs each hook of a `MiddlewareMixin` middleware (`process_request`,
`process_view`, `process_response`) through `sync_to_async`: a hop to a thread and back,
and a copy of the context each way, for hooks that only read headers and set attributes.
With the seven such middleware the site uses, that is about eight hops per request, for
every stream's start and every poll. `inline(path)` runs a middleware's hooks directly
instead: use it only for hooks that do no I/O. `ASGIHandler` (the worker's, in
chatproject/asgi.py) loads each Django middleware named in `MIDDLEWARE` as its twin here;
the setting keeps Django's names, which Django's own checks (`check --deploy`) look for. The session middleware's response hook
saves a changed session to the database, and the messages middleware's may read the
session: `Session` and `MessageMiddleware` send those cases (and only those) to a thread.
`WebSocketUser` finds a WebSocket's user without wrapping what it sends.
"""

import itertools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import Any

from asgiref.sync import ThreadSensitiveContext, markcoroutinefunction, sync_to_async
from channels.auth import get_user
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import middleware as messages
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers import asgi
from django.http import HttpRequest, HttpResponseBase
from django.http.cookie import parse_cookie
from django.utils.module_loading import import_string

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
HOOKS = ("process_view", "process_exception", "process_template_response")


class Inline:
    """Mixed in before a `MiddlewareMixin` middleware class: its hooks run on the event loop.
    (A subclass still, so Django's checks that look for, say, the session middleware find it.)"""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        markcoroutinefunction(self)
        for name in HOOKS:  # the handler collects these from the instance
            if hasattr(self, name):
                setattr(self, name, _on_loop(getattr(self, name)))

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = await self.respond(request, response)
        return response

    async def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return self.process_response(request, response)  # type: ignore[attr-defined,no-any-return]


def _on_loop(hook: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any) -> Any:
        return hook(*args)

    return run


def inline(path: str) -> type:
    """The middleware class at `path`, with `Inline` mixed in."""
    wrapped = import_string(path)
    return type(wrapped.__name__, (Inline, wrapped), {"__module__": __name__, "__qualname__": wrapped.__name__})


class Session(Inline, SessionMiddleware):
    """Sessions: only a response whose session must be saved goes through a thread."""

    async def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        session = getattr(request, "session", None)
        if session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
            return await sync_to_async(self.process_response)(request, response)  # type: ignore[no-any-return]
        return self.process_response(request, response)  # type: ignore[no-any-return]


class MessageMiddleware(Inline, messages.MessageMiddleware):
    """Messages: a response that stores messages (the admin's, say) may read the session,
    so it goes through a thread; one without any stays on the loop."""

    async def respond(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        storage = getattr(request, "_messages", None)
        if storage is not None and (storage.used or storage.added_new):
            return await sync_to_async(self.process_response)(request, response)  # type: ignore[no-any-return]
        return self.process_response(request, response)  # type: ignore[no-any-return]


SecurityMiddleware = inline("django.middleware.security.SecurityMiddleware")
CSPMiddleware = inline("csp.middleware.CSPMiddleware")
CommonMiddleware = inline("django.middleware.common.CommonMiddleware")
CsrfViewMiddleware = inline("django.middleware.csrf.CsrfViewMiddleware")
AuthenticationMiddleware = inline("django.contrib.auth.middleware.AuthenticationMiddleware")
XFrameOptionsMiddleware = inline("django.middleware.clickjacking.XFrameOptionsMiddleware")


INLINE = {
    "django.middleware.security.SecurityMiddleware": "streaming.middleware.SecurityMiddleware",
    "csp.middleware.CSPMiddleware": "streaming.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware": "streaming.middleware.Session",
    "django.middleware.common.CommonMiddleware": "streaming.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware": "streaming.middleware.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "streaming.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware": "streaming.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "streaming.middleware.XFrameOptionsMiddleware",
}


class SyncThreads:
    """`count` threads, each running one call at a time, handed out in turn."""

    def __init__(self, count: int) -> None:
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"django-sync-{i}") for i in range(count)
        ]
        self.turns = itertools.cycle(self.executors)

    def next(self) -> ThreadPoolExecutor:
        return next(self.turns)


class ASGIHandler(asgi.ASGIHandler):
    """Django's ASGI handler, loading each Django middleware of `MIDDLEWARE` as its twin
    that runs on the event loop (`INLINE`); any other middleware as it is.

    Django runs each request's database calls (and other synchronous code) on a thread
    made for that request alone: under a burst that is a thread per request at once,
    hundreds of threads contending for the interpreter, though at most
    `DATABASE_POOL_SIZE` of them can use the database at a time. This handler gives each
    request one of `SYNC_THREADS` threads instead, in turn: a request's synchronous calls
    still run one at a time on one thread (what Django's thread-sensitive code relies on),
    and the worker's threads stay few."""

    def __init__(self) -> None:
        super().__init__()
        self.sync_threads = SyncThreads(settings.SYNC_THREADS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Django's own context inside this one takes it over (the outermost one counts).
        async with ThreadSensitiveContext(executor=self.sync_threads.next()):
            await super().__call__(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        named = settings.MIDDLEWARE
        settings.MIDDLEWARE = [INLINE.get(path, path) for path in named]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = named


class WebSocketUser:
    """A WebSocket's user, from its session cookie: `scope["user"]` (and the session read,
    as `scope["session"]`), as Channels' `AuthMiddlewareStack` gives them, in one database
    call, and none without a session cookie. That stack also wraps the connection's `send`,
    to save a changed session when the socket is accepted; every event sent then goes
    through it. A WebSocket cannot set a cookie, and nothing here changes the session, so
    this one leaves `send` alone. A session whose user no longer verifies (the password
    changed) is ended, as Django's own login check does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        key = cookies.get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, cookies=cookies, session=self.store(key))
        scope["user"] = await get_user(scope) if key else AnonymousUser()
        return await self.inner(scope, receive, send)
