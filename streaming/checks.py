"""System checks: settings that would otherwise fail only on the first request."""

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.utils.module_loading import import_string


@register()
def log_backend_check(**kwargs: Any) -> list[CheckMessage]:
    """`STREAM_LOG_BACKEND` names an importable class with `from_settings()`."""
    from .logs import backend_path

    path = backend_path()
    try:
        backend = import_string(path)
    except ImportError as exc:
        return [Error(f"STREAM_LOG_BACKEND {path!r} cannot be imported: {exc}", id="streaming.E001")]
    if not callable(getattr(backend, "from_settings", None)):
        return [
            Error(
                f"STREAM_LOG_BACKEND {path!r} is not an event-log backend (no from_settings()).",
                hint="Name a class such as streaming.logs.redis.RedisEventLog.",
                id="streaming.E001",
            )
        ]
    return []
