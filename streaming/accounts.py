"""Sign-up and log-in; a guest who signs up keeps their conversations.

Log-in is throttled on failures: a password guesser is slowed to a few guesses a minute
per account (whatever address it comes from) and per address (whatever accounts it
tries), while a user who mistypes once is never in the way.
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django_ratelimit.core import get_usage

from .guests import AUTH_BACKEND
from .models import User

logger = logging.getLogger(__name__)

View = Callable[..., HttpResponseBase]

THROTTLED = "Too many failed log-ins for this username or from this address. Try again in %s."


class SignUpForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username",)


def signup(request: HttpRequest) -> HttpResponse:
    guest = request.user if getattr(request.user, "is_guest", False) else None
    form = SignUpForm(request.POST or None, instance=guest, initial={"username": ""})
    if request.method == "POST" and form.is_valid():
        user = form.save(commit=False)
        user.is_guest = False
        user.save()
        login(request, user, backend=AUTH_BACKEND)
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form})


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"


def _username(group: str, request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().casefold()


def _failures(request: HttpRequest, *, count: bool) -> list[dict[str, Any]]:
    """The failure counters this log-in attempt falls under (its client address, and its
    username when it names one), each with its `count` of failures so far, its `limit` and
    the `time_left` in its window; with `count`, this attempt is one more failure on each.
    A counter the cache cannot answer for comes back full (django-ratelimit fails closed)."""
    limits: list[tuple[str, Any, str]] = [
        ("login-failures-address", "ip", settings.LOGIN_FAILURES_PER_ADDRESS)
    ]
    if _username("", request):
        limits.append(("login-failures-username", _username, settings.LOGIN_FAILURES_PER_USERNAME))
    usages = (
        get_usage(request, group=group, key=key, rate=rate, method="POST", increment=count)
        for group, key, rate in limits
    )
    return [usage for usage in usages if usage is not None]


def _refused(request: HttpRequest, wait: int) -> HttpResponse:
    """The log-in page again, saying why and for how long, as a 429."""
    form = AuthenticationForm(request, initial={"username": request.POST.get("username")})
    context = {
        "form": form,
        "next": request.POST.get("next", ""),
        "throttled": THROTTLED % _duration(wait),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


def throttle_failures(view: View) -> View:
    """Wrap a log-in view (one that redirects on success and shows its form again on a
    failure): once its username or its client address has failed too often, a log-in is
    refused with 429 before any password is checked, so guessing on gains nothing, even
    the right password, until the window ends."""

    @functools.wraps(view)
    def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        usages = _failures(request, count=False)
        limited = [usage for usage in usages if usage["count"] >= usage["limit"]]
        if limited:
            logger.warning(
                "log-in refused (username %r, address %s): too many failures",
                _username("", request), request.META.get("REMOTE_ADDR"),
            )
            return _refused(request, max(1, *(usage["time_left"] for usage in limited)))
        response = view(request, *args, **kwargs)
        if not 300 <= response.status_code < 400:  # not logged in
            _failures(request, count=True)
        return response

    return throttled


login_view = throttle_failures(LoginView.as_view())
