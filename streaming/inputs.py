"""Request checking: the JSON body of a request (or a WebSocket command) and its fields.

Every check raises `BadRequest` with a message that says what is wrong; views answer it
with a 400 (`json_error`), the WebSocket with an error event.
"""

import contextlib
import uuid
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, JsonResponse

from .models import User
from .producer import RunOptions

BUFFER_SIZE_RANGE = (1, 1000)
FLUSH_MS_RANGE = (0, 5000)
CLIENT_ID_LIMIT = 200
MESSAGE_ID_LIMIT = 200
TITLE_LIMIT = 200
# Sequence numbers (and counts of tokens) a client may name: JavaScript's safe integers,
# far below what a Redis stream id holds.
SEQ_MAX = 2**53 - 1
SEQ_DIGITS = len(str(SEQ_MAX))


class BadRequest(Exception):
    """The request cannot be served as sent; the message says why."""


def json_error(message: str, status: int = 400, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def json_object(
    raw: str | bytes, *, what: str = "The request body", must: str = "The request body must"
) -> dict[str, Any]:
    """`raw` parsed as a JSON object, or `BadRequest` saying what is wrong with it (in
    the words `what` and `must`). The parser (orjson) bounds what it accepts: nesting
    deeper than 1,024 levels, numbers beyond 64 bits or a double, invalid UTF-8 and lone
    surrogates are refused, and so is a NUL character anywhere, so nothing downstream
    meets them."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(f"{must} be a JSON object.")
    if (b"\\u0000" if isinstance(raw, bytes) else "\\u0000") in raw and _holds_nul(body):
        raise BadRequest(f"{what} is not accepted: its JSON holds a NUL character (\\u0000), which cannot be stored.")
    return body


def _holds_nul(value: Any) -> bool:
    """Whether a NUL character is in any string of a parsed JSON value (JSON allows it;
    PostgreSQL's text does not)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object body (`{}` when empty)."""
    return json_object(request.body or b"{}")


async def request_user(request: HttpRequest) -> User | None:
    """The logged-in (or guest) user, or None."""
    user = await request.auser()
    return user if user.is_authenticated else None  # type: ignore[return-value]


def text_problem(text: str) -> str:
    """What keeps non-empty `text` from being a message ("" if nothing): not valid
    Unicode (a lone surrogate, which JSON allows), a NUL character (JSON allows it,
    PostgreSQL's text does not), or over `CHAT_MAX_MESSAGE_BYTES`."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    limit = settings.CHAT_MAX_MESSAGE_BYTES
    return f"is larger than the limit of {limit} bytes" if size > limit else ""


def message_text(body: dict[str, Any]) -> str:
    """The `message` field: a non-empty string within the size limit."""
    text = body.get("message")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'message' is required and must be a non-empty string.")
    problem = text_problem(text)
    if problem:
        raise BadRequest(f"'message' {problem}.")
    return text


def short_string(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    """An id-like string field of 1 to `limit` characters (None when absent and optional)."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"'{name}' must be a string of 1 to {limit} characters.")
    return value


def client_id_field(body: dict[str, Any]) -> str | None:
    """The optional `client_id`: the client's id for a message, so that a retry of it
    attaches to the reply the first attempt started instead of starting another."""
    return short_string(body, "client_id", CLIENT_ID_LIMIT, required=False)


def message_id_field(body: dict[str, Any], name: str, *, required: bool) -> uuid.UUID | None:
    """A message's id (a UUID string), or None when absent and optional."""
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, str) and len(value) <= 36:
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise BadRequest(f"'{name}' must be a message id.")


def title_field(body: dict[str, Any], *, required: bool) -> str:
    title = body.get("title", None if required else "")
    if not isinstance(title, str) or len(title) > TITLE_LIMIT or (required and not title.strip()):
        raise BadRequest(
            f"'title' must be a non-empty string of at most {TITLE_LIMIT} characters."
        )
    return title.strip()


def int_field(body: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    """An optional whole-number field within `bounds` (inclusive)."""
    value = body.get(name)
    if value is None:
        return None
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}.")
    return value


def seq_field(body: dict[str, Any], name: str = "after") -> int:
    """A sequence number field (0 when absent)."""
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEQ_MAX:
        raise BadRequest(f"'{name}' must be a sequence number from 0 to {SEQ_MAX}.")
    return value


def run_options(body: dict[str, Any], **defaults: Any) -> RunOptions:
    """`buffer_size`, `flush_ms` and `cancel_on_disconnect` from a request body."""
    cancel = body.get("cancel_on_disconnect", defaults.get("cancel_on_disconnect", False))
    if not isinstance(cancel, bool):
        raise BadRequest("'cancel_on_disconnect' must be true or false.")
    buffer_size = int_field(body, "buffer_size", BUFFER_SIZE_RANGE)
    flush_ms = int_field(body, "flush_ms", FLUSH_MS_RANGE)
    return RunOptions(
        buffer_size=defaults.get("buffer_size") if buffer_size is None else buffer_size,
        flush_ms=defaults.get("flush_ms") if flush_ms is None else flush_ms,
        cancel_on_disconnect=cancel,
    )


def after_seq(request: HttpRequest) -> int:
    """Where to resume: the `Last-Event-ID` header, else `?after=`, else 0 (the start)."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    value = whole_number(raw)
    if value is None:
        raise BadRequest(f"'after' (or Last-Event-ID) must be a sequence number from 0 to {SEQ_MAX}.")
    return value


def whole_number(raw: str) -> int | None:
    """`raw` as a number from 0 to `SEQ_MAX` written in ASCII digits, else None."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= SEQ_DIGITS):
        return None
    value = int(raw)
    return value if value <= SEQ_MAX else None


def message_problem(text: str) -> str:
    """Why a message cannot be sent ("" if it can), in a sentence: the rules of every
    message, for clients (ChatKit) whose errors are sentences rather than field names."""
    if not text.strip():
        return "The message is empty."
    problem = text_problem(text)
    return f"The message {problem}." if problem else ""


SEARCH_TEXT_LIMIT = 200
PAGE_LIMIT = 100_000
EXPORT_FORMATS = ("markdown", "json")


def search_text(request: HttpRequest) -> str:
    """`?q=`: what to search conversations for ("" when absent: no search)."""
    text = request.GET.get("q", "")
    if len(text) > SEARCH_TEXT_LIMIT or "\x00" in text:
        raise BadRequest(f"'q' must be text of at most {SEARCH_TEXT_LIMIT} characters.")
    return text.strip()


def page_number(request: HttpRequest) -> int:
    """`?page=`: which page of a list, from 1 (the first, when absent)."""
    value = whole_number(request.GET.get("page", "1"))
    if value is None or not 1 <= value <= PAGE_LIMIT:
        raise BadRequest(f"'page' must be a whole number from 1 to {PAGE_LIMIT}.")
    return value


def export_format(request: HttpRequest) -> str:
    """`?format=`: `markdown` (when absent) or `json`."""
    value = request.GET.get("format", "markdown")
    if value not in EXPORT_FORMATS:
        raise BadRequest("'format' must be 'markdown' or 'json'.")
    return value
