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


@register()
def agent_tools_check(**kwargs: Any) -> list[CheckMessage]:
    """`AGENT_TOOLS` names importable `@function_tool`s; `AGENT_MCP_SERVERS` are http(s) URLs."""
    from agents import FunctionTool
    from django.conf import settings

    problems: list[CheckMessage] = []
    for path in settings.AGENT_TOOLS:
        try:
            tool = import_string(path)
        except ImportError as exc:
            problems.append(Error(f"AGENT_TOOLS: {path!r} cannot be imported: {exc}", id="streaming.E002"))
            continue
        if not isinstance(tool, FunctionTool):
            problems.append(Error(
                f"AGENT_TOOLS: {path!r} is not a tool.",
                hint="Name a function decorated with agents.function_tool.", id="streaming.E002",
            ))
    for url in settings.AGENT_MCP_SERVERS:
        if not url.startswith(("http://", "https://")):
            problems.append(Error(
                f"AGENT_MCP_SERVERS: {url!r} is not an http(s) URL.",
                hint="The MCP servers' streamable-HTTP endpoints, e.g. http://tools:8000/mcp.",
                id="streaming.E003",
            ))
    return problems
