from django.urls import include, path

from . import accounts, views

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("t/<uuid:thread_id>", views.chat_page, name="chat-thread"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/stream/message", views.stream_message, name="stream-message"),
]
