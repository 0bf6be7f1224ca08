"""Sign-up; a guest who signs up keeps their conversations."""

from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .guests import AUTH_BACKEND
from .models import User


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
