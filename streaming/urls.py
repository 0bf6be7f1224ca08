from django.urls import include, path

from . import accounts, views

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("t/<uuid:thread_id>", views.chat_page, name="chat-thread"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    # The native API (docs/api.md).
    path("api/threads", views.threads, name="threads"),
    path("api/threads/<uuid:thread_id>", views.thread_detail, name="thread"),
    path("api/threads/<uuid:thread_id>/messages", views.thread_messages, name="thread-messages"),
    path("api/runs/<uuid:run_id>/events", views.run_events, name="run-events"),
    path("api/runs/<uuid:run_id>/stop", views.run_stop, name="run-stop"),
    # The seed examples' endpoints.
    path("api/stream/message", views.stream_message, name="stream-message"),
]
