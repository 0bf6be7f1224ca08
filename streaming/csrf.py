"""The JSON CSRF rule: a same-site JSON request needs no CSRF token.

A cross-site page cannot send `application/json` (or any body with an Origin naming this
site) without a CORS preflight that this site never grants, so the Origin or Referer is
proof enough. Every other unsafe request follows Django's CSRF rules.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.http import is_same_domain
from django.views.decorators.csrf import csrf_exempt

View = Callable[..., Awaitable[HttpResponse]]


def _same_site(request: HttpRequest) -> bool:
    """Whether the request's Origin (else its Referer's origin) is this site: the request's
    own scheme, host and port, or one of `CSRF_TRUSTED_ORIGINS` (where `*.` matches any
    subdomain, as in Django's CSRF check). A request naming neither is not cross-site."""
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return True
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    try:
        if origin == f"{request.scheme}://{request.get_host()}":
            return True
    except DisallowedHost:
        pass
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parts.netloc, urlsplit(trusted).netloc[1:])
        for trusted in settings.CSRF_TRUSTED_ORIGINS
        if "*" in trusted and urlsplit(trusted).scheme == parts.scheme
    )


_csrf = CsrfViewMiddleware(lambda request: HttpResponse())


def json_csrf(view: View) -> View:
    """Accept a JSON request without a CSRF token when it is same-site by its Origin or
    Referer (a cross-site page cannot send `application/json` without CORS); any other
    request follows Django's CSRF rules."""
    return _csrf_guard(view, json_only=True)


def origin_csrf(view: View) -> View:
    """Accept a request without a CSRF token when its Origin or Referer names this site,
    whatever its body's type (for clients that post bare bodies); a request naming neither
    follows Django's CSRF rules."""
    return _csrf_guard(view, json_only=False)


def _csrf_guard(view: View, *, json_only: bool) -> View:
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
