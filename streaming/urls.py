from django.urls import include, path

from . import accounts, chatkit_views, seed_views, views

urlpatterns = [
    path("", views.chat_page, name="chat"),
    path("t/<uuid:thread_id>", views.chat_page, name="chat-thread"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.login_view, name="login"),  # throttled on failures
    path("accounts/", include("django.contrib.auth.urls")),
    # The native API (docs/api.md).
    path("api/session", views.session, name="session"),
    path("api/threads", views.threads, name="threads"),
    path("api/threads/<uuid:thread_id>", views.thread_detail, name="thread"),
    path("api/threads/<uuid:thread_id>/messages", views.thread_messages, name="thread-messages"),
    path("api/threads/<uuid:thread_id>/branch", views.thread_branch, name="thread-branch"),
    path("api/threads/<uuid:thread_id>/export", views.thread_export, name="thread-export"),
    path("api/runs/<uuid:run_id>/events", views.run_events, name="run-events"),
    path("api/runs/<uuid:run_id>/poll", views.run_poll, name="run-poll"),
    path("api/runs/<uuid:run_id>/stop", views.run_stop, name="run-stop"),
    path("api/runs/<uuid:run_id>/regenerate", views.run_regenerate, name="run-regenerate"),
    # The seed examples' endpoints (docs/api.md, "Seed-compatible endpoints").
    path("api/stream/message", seed_views.stream_message, name="stream-message"),
    path("api/stream/buffered", seed_views.stream_buffered, name="stream-buffered"),
    path("api/stream/resilient", seed_views.stream_resilient, name="stream-resilient"),
    path("api/stream/chatkit", seed_views.stream_chatkit, name="stream-chatkit"),
    path("api/stream/monitored", seed_views.stream_monitored, name="stream-monitored"),
    path("api/stream/hybrid", seed_views.stream_hybrid, name="stream-hybrid"),
    path("api/message/<str:message_id>", seed_views.message_poll, name="message-poll"),
    # ChatKit (docs/chatkit.md).
    path("api/chatkit/session", chatkit_views.chatkit_session, name="chatkit-session"),
    path("api/chatkit/refresh", chatkit_views.chatkit_refresh, name="chatkit-refresh"),
    path("chatkit", chatkit_views.chatkit_api, name="chatkit-api"),
    path("chatkit/", chatkit_views.chatkit_page, name="chatkit-page"),
]
