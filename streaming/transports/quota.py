"""Open streams per user, on this worker: each SSE response and each WebSocket connection
holds one while it is open. Past `CHAT_MAX_STREAMS_PER_USER` a new one is refused (HTTP 429,
or a WebSocket closed with `CLOSE_CODE`), so that one user cannot hold a worker's memory
and sockets with connections. Counted per worker: a user's streams spread over workers
meet each worker's limit separately."""

import threading

from django.conf import settings

CLOSE_CODE = 4429  # a WebSocket refused for this limit (the 4000s are the application's)
REFUSAL = "You have too many streams open; close a tab or another connection and try again."

_lock = threading.Lock()  # a response's close() runs in a worker thread
_open: dict[object, int] = {}


def refusal(user_id: object) -> str:
    """Why `user_id` may not open one more stream now ("" if they may)."""
    with _lock:
        full = _open.get(user_id, 0) >= settings.CHAT_MAX_STREAMS_PER_USER
    return REFUSAL if full else ""


def take(user_id: object) -> bool:
    """Hold a stream for `user_id`; False (nothing held) past the limit."""
    with _lock:
        held = _open.get(user_id, 0)
        if held >= settings.CHAT_MAX_STREAMS_PER_USER:
            return False
        _open[user_id] = held + 1
        return True


def give_back(user_id: object) -> None:
    with _lock:
        held = _open.get(user_id, 0) - 1
        if held > 0:
            _open[user_id] = held
        else:
            _open.pop(user_id, None)
