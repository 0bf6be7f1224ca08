"""Guest access: a visitor without an account gets a real user bound to their session.

A guest is made only when a visitor first does something that needs an identity: a
request that changes something (not GET or HEAD: reading a page makes no user; the chat
page asks for its identity with `POST /api/session` before it connects), to one of the
site's own views (a page that does not exist, static files, the admin and the account
pages make none), and at most `CHAT_GUESTS_PER_ADDRESS` per client address: beyond that
the visitor is asked to log in, so that an anonymous client cannot mint itself users, and
fresh per-user quotas, at will.
"""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import alogin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django_ratelimit.core import is_ratelimited

from . import errors, services
from .models import User

# Paths that never need a chat identity: they must not mint guest users.
EXEMPT_PREFIXES = ("/admin/", "/static/", "/accounts/", "/healthz", "/favicon.ico")
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


class TooManyGuests(Exception):
    """The client's address has had its share of new guests for now."""


def _counted(address: str) -> bool:
    """Count one more new guest for `address`; False if that is over its rate."""
    return not is_ratelimited(
        None, group="guests-per-address", key=lambda group, request: address,
        rate=settings.CHAT_GUESTS_PER_ADDRESS, increment=True,
    )


async def guest_user_create(address: str) -> User:
    """A new guest user for a visitor from `address`; `TooManyGuests` past the rate."""
    if not await sync_to_async(_counted)(address):
        raise TooManyGuests(address)
    return await sync_to_async(services.guest_user_create)()


def _needs_identity(request: HttpRequest) -> bool:
    """Whether the request acts (not a read) on one of the site's own views (not a 404,
    not an exempt prefix)."""
    path = request.path_info
    if request.method in ("GET", "HEAD", "OPTIONS") or path.startswith(EXEMPT_PREFIXES):
        return False
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


class GuestMiddleware:
    """Log anonymous visitors in as a fresh guest (when `CHAT_ALLOW_GUESTS` is on)."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.CHAT_ALLOW_GUESTS and _needs_identity(request):
            user = await request.auser()
            if not user.is_authenticated:
                try:
                    user = await guest_user_create(request.META.get("REMOTE_ADDR", ""))
                except TooManyGuests:
                    return _too_many(request)
                await alogin(request, user, backend=AUTH_BACKEND)
                request.user = guest = user

                async def auser() -> User:
                    return guest

                request.auser = auser
        return await self.get_response(request)


def _too_many(request: HttpRequest) -> HttpResponse:
    """429: to the API as JSON, to a browser as a short page with the way out."""
    if request.path.startswith(("/api/", "/chatkit")):
        return JsonResponse({"error": errors.TOO_MANY_GUESTS}, status=429)
    page = f'<!doctype html><title>Too many guests</title><p>{errors.TOO_MANY_GUESTS}</p><p><a href="/accounts/login/">Log in</a> · <a href="/accounts/signup/">Sign up</a></p>'
    return HttpResponse(page, status=429)
