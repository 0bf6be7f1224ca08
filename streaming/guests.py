"""Guest access: a visitor without an account gets a real user bound to their session."""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import alogin
from django.http import HttpRequest, HttpResponse

from . import services
from .models import User

# Paths that never need a chat identity: they must not mint guest users.
EXEMPT_PREFIXES = ("/admin/", "/static/", "/accounts/", "/healthz", "/favicon.ico")
AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


async def guest_user_create() -> User:
    return await sync_to_async(services.guest_user_create)()


class GuestMiddleware:
    """Log anonymous visitors in as a fresh guest (when `CHAT_ALLOW_GUESTS` is on)."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.CHAT_ALLOW_GUESTS and not request.path.startswith(EXEMPT_PREFIXES):
            user = await request.auser()
            if not user.is_authenticated:
                user = await guest_user_create()
                await alogin(request, user, backend=AUTH_BACKEND)
                request.user = guest = user

                async def auser() -> User:
                    return guest

                request.auser = auser
        return await self.get_response(request)
