"""Settings, driven by environment variables with defaults that need no services.

Unset `DATABASE_URL` means a SQLite file; unset `REDIS_URL` means one process with
in-memory streaming; unset `OPENAI_API_KEY` means the built-in
offline model. See `.env.example` and the README for the full table.
"""

from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="django-insecure-dev-only-key-change-me" if DEBUG else environ.Env.NOTSET,
)
# .env.example's key is public: anyone could forge this site's sessions, password resets
# and signed values with it, so production refuses to start on it.
PLACEHOLDER_SECRET_KEYS = {"change-me-to-a-long-random-string-of-at-least-fifty-characters"}
if not DEBUG and SECRET_KEY in PLACEHOLDER_SECRET_KEYS:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is still the placeholder from .env.example: set a secret of your "
        "own in .env (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic",
    "django.contrib.staticfiles",
    "channels",
    "streaming",
]

# Django's own middleware run their hooks on the event loop, not through a thread each
# (streaming/middleware.py: the worker's ASGI handler loads each of these as its twin).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Async-native (WhiteNoise's middleware is sync-only: under ASGI it would send every
    # request, SSE starts included, through a thread and back).
    "servestatic.middleware.ServeStaticMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "streaming.guests.GuestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A bounded pool per worker: a burst of requests waits for a connection instead of
    # exhausting the server's max_connections (and failing).
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_SIZE", default=10),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
    }
# Threads of a worker that run requests' database calls (each request keeps to one of
# them): more than the pool's connections would only wait for one.
SYNC_THREADS = env.int("SYNC_THREADS", default=env.int("DATABASE_POOL_SIZE", default=10))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "streaming.User"

REDIS_URL = env.str("REDIS_URL", default="")
# The cache holds rate-limit counters and issued ChatKit sessions: shared through Redis
# across workers when there is one.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "chat:cache",
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "chat"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The chat page's libraries, installed from npm (package-lock.json) and served from here:
# no third-party code in the repository and no CDN.
VENDOR_STATIC = {
    "vendor/marked": BASE_DIR / "node_modules/marked/lib",
    "vendor/dompurify": BASE_DIR / "node_modules/dompurify/dist",
    "vendor/highlight": BASE_DIR / "node_modules/@highlightjs/cdn-assets",
}
STATICFILES_DIRS = [BASE_DIR / "static"] + [
    (prefix, path) for prefix, path in VENDOR_STATIC.items() if path.is_dir()
]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Content-Security-Policy: scripts only from this site (no inline scripts, no CDN), and
# network access only to this site (HTTP, SSE and WebSocket). Styles may be inline for
# the admin's sake; model output is sanitized before it reaches the page anyway.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Production hardening; every value can be relaxed from the environment behind a proxy.
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
# Both reach beyond this site (every subdomain; the browsers' built-in preload lists, which
# take months to leave), so a deployment opts in to them, and `check --deploy` does not
# warn about the choice (W005, W021).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Failed log-ins (django-ratelimit, on the cache: counted across workers), per username and
# per client address: beyond either rate, log-ins for that username or from that address
# are refused (429) until the window ends.
LOGIN_FAILURES_PER_USERNAME = env.str("LOGIN_FAILURES_PER_USERNAME", default="5/m")
LOGIN_FAILURES_PER_ADDRESS = env.str("LOGIN_FAILURES_PER_ADDRESS", default="20/m")

# The agent.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
AGENT_MODEL = env.str("AGENT_MODEL", default="gpt-4o-mini")
AGENT_API = env.str("AGENT_API", default="responses")
AGENT_INSTRUCTIONS = env.str("AGENT_INSTRUCTIONS", default="You are a helpful assistant.")
AGENT_HISTORY_CHARS = env.int("AGENT_HISTORY_CHARS", default=24000)
AGENT_HISTORY_MESSAGES = env.int("AGENT_HISTORY_MESSAGES", default=40)
# Tools: dotted paths to `@function_tool` functions, and MCP servers by URL (streamable
# HTTP); both off by default. The offline model's demo has the built-in tools.
AGENT_TOOLS = env.list("AGENT_TOOLS", default=[])
AGENT_MCP_SERVERS = env.list("AGENT_MCP_SERVERS", default=[])
AGENT_TOOL_TIMEOUT_SECONDS = env.float("AGENT_TOOL_TIMEOUT_SECONDS", default=30.0)
AGENT_MAX_TOOL_CALLS = env.int("AGENT_MAX_TOOL_CALLS", default=8)
AGENT_TOOL_OUTPUT_CHARS = env.int("AGENT_TOOL_OUTPUT_CHARS", default=4000)
OFFLINE_MODEL_TPS = env.float("OFFLINE_MODEL_TPS", default=40.0)

# The chat.
CHAT_ALLOW_GUESTS = env.bool("CHAT_ALLOW_GUESTS", default=True)
# New guests per client address (django-ratelimit's rate syntax, counted on the cache):
# beyond it a visitor from that address is asked to log in, so an anonymous client cannot
# mint itself fresh per-user quotas.
CHAT_GUESTS_PER_ADDRESS = env.str("CHAT_GUESTS_PER_ADDRESS", default="60/h")
CHAT_MAX_MESSAGE_BYTES = env.int("CHAT_MAX_MESSAGE_BYTES", default=32 * 1024)
CHAT_MAX_CONCURRENT_RUNS = env.int("CHAT_MAX_CONCURRENT_RUNS", default=3)
CHAT_MESSAGES_PER_MINUTE = env.int("CHAT_MESSAGES_PER_MINUTE", default=20)
CHAT_THREADS_PER_HOUR = env.int("CHAT_THREADS_PER_HOUR", default=60)
# Open streams (SSE responses, WebSocket connections) per user on each worker.
CHAT_MAX_STREAMS_PER_USER = env.int("CHAT_MAX_STREAMS_PER_USER", default=20)

# ChatKit: a hosted workflow (session tokens) or this server's own ChatKit endpoint.
CHATKIT_BACKEND = env.str("CHATKIT_BACKEND", default="auto")  # auto, hosted, self, off
if CHATKIT_BACKEND not in {"auto", "hosted", "self", "off"}:
    raise ImproperlyConfigured("CHATKIT_BACKEND must be one of auto, hosted, self, off.")
CHATKIT_WORKFLOW_ID = env.str("CHATKIT_WORKFLOW_ID", default="")
CHATKIT_DOMAIN_KEY = env.str("CHATKIT_DOMAIN_KEY", default="domain_pk_localhost_dev")
CHATKIT_SESSIONS_RATE = env.str("CHATKIT_SESSIONS_RATE", default="10/m")

# `plain` lines, or `json`: one JSON object per record, with a run's records carrying its
# `run_id` and `thread_id` as fields (streaming/structured_logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "streaming.structured_logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "openai": {"level": "WARNING"}},
}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that server processes started by tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

# The streaming core (see streaming/runs.py).
STREAM_RETENTION_SECONDS = env.int("STREAM_RETENTION_SECONDS", default=3600)
STREAM_MAX_EVENTS = env.int("STREAM_MAX_EVENTS", default=100_000)
STREAM_FLUSH_MS = env.int("STREAM_FLUSH_MS", default=30)
# The event log and run registry backend (a dotted path); empty: Redis when REDIS_URL is
# set, else in-process memory (streaming/logs/__init__.py).
STREAM_LOG_BACKEND = env.str("STREAM_LOG_BACKEND", default="")
STREAM_CHECKPOINT_SECONDS = env.float("STREAM_CHECKPOINT_SECONDS", default=1.0)
STREAM_WORKER_TTL = env.float("STREAM_WORKER_TTL", default=6.0)
STREAM_REAP_INTERVAL = env.float("STREAM_REAP_INTERVAL", default=2.0)
STREAM_IDLE_CHECK_SECONDS = env.float("STREAM_IDLE_CHECK_SECONDS", default=5.0)
# A client this many bytes behind on its connection (written, not yet taken) is cut off and
# resumes from its last event (streaming/transports/backlog.py).
STREAM_CLIENT_BUFFER_BYTES = env.int("STREAM_CLIENT_BUFFER_BYTES", default=1024 * 1024)
STREAM_SSE_HEARTBEAT_SECONDS = env.float("STREAM_SSE_HEARTBEAT_SECONDS", default=15.0)
# On SIGTERM, how long this worker's runs may keep generating before they are interrupted.
STREAM_DRAIN_SECONDS = env.float("STREAM_DRAIN_SECONDS", default=20.0)

# Metrics (streaming/metrics.py): with METRICS_PORT set, each worker serves Prometheus's text
# format on METRICS_BIND:METRICS_PORT (chatproject/serve.py), an internal address that nginx
# never proxies; unset, no metrics are served.
METRICS_PORT = env.int("METRICS_PORT", default=None)
METRICS_BIND = env.str("METRICS_BIND", default="127.0.0.1")
