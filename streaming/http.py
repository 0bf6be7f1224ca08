"""Small HTTP helpers shared by the views: JSON bodies, errors and SSE framing."""

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse


class BadRequest(Exception):
    """The request cannot be served as sent; the message says why."""


def json_error(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object body, or `BadRequest` saying what is wrong with it."""
    try:
        body = json.loads(request.body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def message_text(body: dict[str, Any]) -> str:
    """The `message` field: a non-empty string within the size limit."""
    text = body.get("message")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'message' is required and must be a non-empty string.")
    limit = settings.CHAT_MAX_MESSAGE_BYTES
    if len(text.encode()) > limit:
        raise BadRequest(f"'message' is larger than the limit of {limit} bytes.")
    return text


def sse_data(payload: dict[str, Any]) -> bytes:
    """One SSE event as a single piece: `data: <json>` and a blank line."""
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
