"""Error pages for what the views did not handle.

A request that finds the server out of capacity (no pooled database connection within
`DATABASE_POOL_TIMEOUT`) or its event log unreachable for a moment (Redis restarting) gets
503 with `Retry-After`, which the page and the documented clients retry, instead of a 500.
Anything else is a plain 500 (never a traceback: that is `DEBUG` only).
"""

import logging
import sys

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import metrics
from .logs import LogUnavailable

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
BUSY = "The server is busy; retry shortly."


def _caused_by(exc: BaseException | None, kinds: tuple[type[BaseException], ...]) -> bool:
    while exc is not None:
        if isinstance(exc, kinds):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` means the event log (Redis) could not be reached just now."""
    return _caused_by(exc, (LogUnavailable, RedisConnectionError, RedisTimeoutError))


def server_error_page(request: HttpRequest) -> HttpResponse:
    """`handler500`: Django calls it while handling the exception."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError) and _caused_by(exc, (PoolTimeout,)):
        reason, why = "no_capacity", "no database connection free"
    elif unavailable(exc):
        reason, why = "unavailable", "the event log is unreachable"
    else:
        return server_error(request)
    metrics.refused(reason)
    logger.warning("%s for %s %s: answered 503", why, request.method, request.path)
    response = JsonResponse({"error": BUSY}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
